"""One batch of a stateful stage: outputs first, then state, never the other way round.

Shared by the decide and circular stages. Reads during the batch see the
batch's own pending writes (``BatchView``); outputs are queued as they are
made; ``commit`` waits for the broker to acknowledge every output and only
then writes the table. A crash before the writes replays the batch against
unchanged state and repeats the same outputs (same ids); it never loses one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from faust.types import EventT, TableT, TopicT

from agents.context import within_event
from agents.emit import Emitter

_MISSING = object()


class BatchView:
    """The state as seen mid-batch: this batch's pending writes over the table."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self._table = table
        self.pending: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        value = self.pending.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        stored: bytes | None = self._table.get(key.encode())
        return stored


class Batch:
    def __init__(self, emit: Emitter, table: TableT[bytes, bytes]) -> None:
        self.emit = emit
        self.table = table
        self.view = BatchView(table)
        self.outbox = emit.outbox()
        self._writes: list[tuple[EventT[bytes], str, bytes | None]] = []

    def send(self, topic: TopicT, key: bytes | None, value: bytes) -> None:
        """Queue one output; ``commit`` hands the batch's outputs to the producer at once."""
        self.outbox.add(topic, key, value)

    def stage(self, event: EventT[bytes], writes: tuple[tuple[str, bytes | None], ...]) -> None:
        """Queue one event's writes (``None`` deletes) in order; later reads see them."""
        for key, value in writes:
            self.view.pending[key] = value
            self._writes.append((event, key, value))

    async def commit(self, extra: Sequence[tuple[EventT[bytes], bytes, bytes]] = ()) -> None:
        """Send the outputs, wait for every ack, then write the table (each write in its event)."""
        await asyncio.gather(*await self.outbox.flush())
        if self.emit.transactional:
            self._write_through_faust(extra)
            return
        # Faust's Table.__setitem__ sends one changelog record per write through
        # its ProducerBuffer; here the same records (same key, value and
        # partition: the event's) leave as one record batch per partition, and
        # the local store gets the same puts.
        table = self.table
        store: Any = table.data
        changelog = table.changelog_topic
        out = self.emit.outbox()
        out.on_sent(changelog, store.set_persisted_offset)
        index = store._key_index
        writes = [(event, key.encode(), value) for event, key, value in self._writes]
        writes.extend(extra)
        for event, raw_key, value in writes:
            partition = event.message.partition
            if value is None:
                store._del(raw_key)
            else:
                index[raw_key] = partition
                store._db_for_partition(partition).put(raw_key, value)
            out.add(changelog, raw_key, value, partition)
        # Wait for the changelog's acks too (their callbacks set the store's
        # persisted offsets first): the next batch's local puts never run ahead
        # of an unacknowledged changelog, so a kill -9 cannot leave recovery a
        # stale changelog tail to re-apply over newer local values.
        await asyncio.gather(*await out.flush())

    def _write_through_faust(self, extra: Sequence[tuple[EventT[bytes], bytes, bytes]]) -> None:
        table = self.table
        for event, key, value in self._writes:
            with within_event(event):
                if value is None:
                    del table[key.encode()]
                else:
                    table[key.encode()] = value
        for event, raw_key, value in extra:
            with within_event(event):
                table[raw_key] = value
