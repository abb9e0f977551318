"""The commit order of a batch (agents/checkpoint.py): sinks, changelog, local store."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from agents.checkpoint import Checkpoint
from agents.store import MemoryStore


class FakeSender:
    """Records every send; acks resolve only when the test says so."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, bytes | None, bytes | None, int | None]] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.offsets: dict[tuple[str, int | None], int] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> asyncio.Future[Any]:
        self.log.append(("send", topic, key, value, partition))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        n = self.offsets.get((topic, partition), 0)
        self.offsets[(topic, partition)] = n + 1
        fut.set_result(SimpleNamespace(offset=n))
        self.futures.append(fut)
        return fut


def test_outputs_then_changelog_then_store_with_the_offset():
    sender, store = FakeSender(), MemoryStore("t-changelog")

    async def run() -> None:
        cp = Checkpoint(sender, store)
        await cp.send("grants", b"u", b"g1")
        cp.stage(2, b"u", b"state-1")
        cp.stage(2, b"u", b"state-2")  # the batch's last value wins: one record per key
        cp.stage(2, b"v", None)
        cp.stage(5, b"w", b"w-state")
        assert store.data == {}  # nothing written before commit
        await cp.commit()

    asyncio.run(run())
    assert [entry[1] for entry in sender.log] == ["grants"] + ["t-changelog"] * 3
    changelog = [(e[2], e[3], e[4]) for e in sender.log[1:]]
    assert changelog == [(b"u", b"state-2", 2), (b"v", None, 2), (b"w", b"w-state", 5)]
    assert store.data == {2: {b"u": b"state-2"}, 5: {b"w": b"w-state"}}
    assert store.offsets == {2: 1, 5: 0}  # the last changelog offset per partition


def test_a_refused_output_writes_no_changelog_and_no_state():
    store = MemoryStore("t-changelog")

    class Refusing(FakeSender):
        async def send(self, topic: str, key: Any, value: Any, partition: Any) -> Any:
            fut = await super().send(topic, key, value, partition)
            if topic == "grants":
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(RuntimeError("broker refused"))
            return fut

    sender = Refusing()

    async def run() -> None:
        cp = Checkpoint(sender, store)
        await cp.send("grants", b"u", b"g1")
        cp.stage(0, b"u", b"s")
        await cp.commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert [e[1] for e in sender.log] == ["grants"]
    assert store.data == {} and store.offsets == {}


def test_a_refused_changelog_record_leaves_the_local_store_untouched():
    store = MemoryStore("t-changelog")

    class Refusing(FakeSender):
        async def send(self, topic: str, key: Any, value: Any, partition: Any) -> Any:
            fut = await super().send(topic, key, value, partition)
            if topic == "t-changelog" and key == b"v":
                fut = asyncio.get_running_loop().create_future()
                fut.set_exception(RuntimeError("changelog refused"))
            return fut

    async def run() -> None:
        cp = Checkpoint(Refusing(), store)
        cp.stage(1, b"u", b"s-u")
        cp.stage(1, b"v", b"s-v")
        await cp.commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert store.data == {}
