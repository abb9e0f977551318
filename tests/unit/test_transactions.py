"""exactly_once's commit order (agents/checkpoint.py with a transactional sender):
begin, outputs, changelog, input offsets + commit, and only then the local store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from agents.checkpoint import Checkpoint, Record, Transactional
from agents.store import MemoryStore
from tests.unit.test_checkpoint import FakeSender
from topologies.app import worker_id


class FakeTransactional(FakeSender):
    def __init__(self, fail_commit: bool = False) -> None:
        super().__init__()
        self.events: list[object] = []
        self.fail_commit = fail_commit

    async def begin(self) -> None:
        self.events.append("begin")

    async def send_records(
        self, topic: str, partition: int, records: Sequence[Record]
    ) -> list[tuple[Awaitable[Any], int]]:
        self.events.append(("send", topic, partition))
        return await super().send_records(topic, partition, records)

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.events.append(("commit", dict(offsets)))
        if self.fail_commit:
            raise RuntimeError("ProducerFenced")


def _batch(sender: FakeSender, store: MemoryStore) -> Checkpoint:
    cp = Checkpoint(sender, store)
    cp.consumed("in", 1, 7)
    cp.consumed("in", 1, 9)
    cp.consumed("in", 1, 8)  # out of order: the highest offset + 1 is committed
    cp.consumed("in", 3, 0)
    cp.send("grants", b"u", b"g", partition=0)
    cp.stage(1, b"u", b"state")
    return cp


def test_outputs_changelog_and_input_offsets_commit_in_one_transaction_before_the_store():
    sender, store = FakeTransactional(), MemoryStore("cl")
    assert isinstance(sender, Transactional)
    seen_store: list[dict[int, dict[bytes, bytes]]] = []

    async def run() -> None:
        cp = _batch(sender, store)
        original = sender.commit

        async def commit(offsets: Mapping[tuple[str, int], int]) -> None:
            seen_store.append(dict(store.data))  # the store as it was when the commit ran
            await original(offsets)

        sender.commit = commit  # type: ignore[method-assign]
        await cp.commit()

    asyncio.run(run())
    assert sender.events == [
        "begin",
        ("send", "grants", 0),
        ("send", "cl", 1),
        ("commit", {("in", 1): 10, ("in", 3): 1}),
    ]
    assert seen_store == [{}]  # not written before the transaction committed
    assert store.data == {1: {b"u": b"state"}}


def test_a_failed_commit_writes_no_local_state():
    sender, store = FakeTransactional(fail_commit=True), MemoryStore("cl")

    async def run() -> None:
        await _batch(sender, store).commit()

    with pytest.raises(RuntimeError):
        asyncio.run(run())
    assert store.data == {} and store.offsets == {}


def test_a_plain_sender_has_no_transaction():
    cp = Checkpoint(FakeSender(), MemoryStore())
    assert cp.transaction is None


def test_the_worker_id_is_made_once_per_data_dir(tmp_path: Path):
    first = worker_id(tmp_path / "state")
    assert first == worker_id(tmp_path / "state")  # a restart on its data dir: same ids
    assert first != worker_id(tmp_path / "other")  # a replacement machine: its own
