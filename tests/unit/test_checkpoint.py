"""The commit order of a batch (agents/checkpoint.py): sinks, changelog, local store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from agents.checkpoint import COMMITTING, Checkpoint, Record, committing
from agents.partitioning import Partitioner
from agents.store import MemoryStore


class FakeSender:
    """Records every chunk sent; acks resolve at once with the chunk's base offset."""

    def __init__(self, refuse: set[tuple[str, bytes | None]] | None = None) -> None:
        self.log: list[tuple[str, int, list[Record]]] = []
        self.ends: dict[tuple[str, int], int] = {}
        self.refuse = refuse or set()

    async def partitioner(self, topic: str) -> Partitioner:
        return Partitioner(4)

    async def send_records(
        self, topic: str, partition: int, records: Sequence[Record]
    ) -> list[tuple[Awaitable[Any], int]]:
        self.log.append((topic, partition, list(records)))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        base = self.ends.get((topic, partition), 0)
        self.ends[(topic, partition)] = base + len(records)
        if any((topic, k) in self.refuse for k, _ in records):
            fut.set_exception(RuntimeError("broker refused"))
        else:
            fut.set_result(SimpleNamespace(offset=base))
        return [(fut, len(records))]


def test_outputs_then_changelog_then_store_with_the_last_offset():
    sender, store = FakeSender(), MemoryStore("t-changelog")
    sender.ends[("t-changelog", 2)] = 10  # the changelog partition already holds 10 records

    async def run() -> None:
        cp = Checkpoint(sender, store)
        cp.send("grants", b"u", b"g1")
        cp.send("grants", b"u", b"g2")
        cp.send("dead", None, b"d1", partition=3)
        cp.stage(2, b"u", b"state-1")
        cp.stage(2, b"u", b"state-2")  # the batch's last value wins: one record per key
        cp.stage(2, b"v", None)
        cp.stage(5, b"w", b"w-state")
        assert sender.log == [] and store.data == {}  # nothing leaves before commit
        await cp.commit()

    asyncio.run(run())
    user_partition = DefaultPartitioner()(b"u", [0, 1, 2, 3], [0, 1, 2, 3])
    assert sender.log == [
        ("grants", user_partition, [(b"u", b"g1"), (b"u", b"g2")]),  # in order, keyed
        ("dead", 3, [(None, b"d1")]),
        ("t-changelog", 2, [(b"u", b"state-2"), (b"v", None)]),
        ("t-changelog", 5, [(b"w", b"w-state")]),
    ]
    assert store.data == {2: {b"u": b"state-2"}, 5: {b"w": b"w-state"}}
    assert store.offsets == {2: 11, 5: 0}  # the offset of the last changelog record


def test_a_refused_output_writes_no_changelog_and_no_state():
    sender, store = FakeSender(refuse={("grants", b"u")}), MemoryStore("t-changelog")

    async def run() -> None:
        cp = Checkpoint(sender, store)
        cp.send("grants", b"u", b"g1")
        cp.stage(0, b"u", b"s")
        await cp.commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert [topic for topic, _, _ in sender.log] == ["grants"]
    assert store.data == {} and store.offsets == {}


def test_a_refused_changelog_record_leaves_that_partitions_store_untouched():
    sender, store = FakeSender(refuse={("t-changelog", b"v")}), MemoryStore("t-changelog")

    async def run() -> None:
        cp = Checkpoint(sender, store)
        cp.stage(1, b"u", b"s-u")
        cp.stage(1, b"v", b"s-v")
        await cp.commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert store.data == {}


class HeldSender(FakeSender):
    """Acks held until released, per topic: a broker that has not answered yet."""

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[str, asyncio.Event] = {}

    async def send_records(
        self, topic: str, partition: int, records: Sequence[Record]
    ) -> list[tuple[Awaitable[Any], int]]:
        chunks = await super().send_records(topic, partition, records)
        gate = self.held.setdefault(topic, asyncio.Event())

        async def acked(fut: Awaitable[Any] = chunks[0][0]) -> Any:
            await gate.wait()
            return await fut

        return [(asyncio.ensure_future(acked()), chunks[0][1])]


def test_a_committing_checkpoint_names_the_acks_it_waits_for_until_it_ends():
    sender, store = HeldSender(), MemoryStore("t-changelog")
    seen: list[str] = []

    async def run() -> None:
        cp = Checkpoint(sender, store, name="decide")
        cp.send("grants", b"u", b"g1")
        cp.stage(0, b"u", b"s")
        task = asyncio.ensure_future(cp.commit())
        await asyncio.sleep(0.01)
        seen.append(committing())
        sender.held["grants"].set()
        await asyncio.sleep(0.01)
        seen.append(committing())
        sender.held["t-changelog"].set()
        await task
        seen.append(committing())

    asyncio.run(run())
    assert seen[0].startswith("decide waits for its outputs acks since ")
    assert seen[1].startswith("decide waits for its changelog acks since ")
    assert seen[2] == "no checkpoint committing" and COMMITTING == {}
    assert store.data == {0: {b"u": b"s"}}


def test_a_failed_commit_is_no_longer_named_as_committing():
    sender, store = FakeSender(refuse={("grants", b"u")}), MemoryStore("t-changelog")

    async def run() -> None:
        cp = Checkpoint(sender, store, name="decide")
        cp.send("grants", b"u", b"g1")
        await cp.commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert COMMITTING == {}
