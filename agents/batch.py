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
        self._writes: list[tuple[EventT[bytes], str, bytes | None]] = []
        self._sent: list[Any] = []

    async def send(self, topic: TopicT, key: bytes | None, value: bytes) -> None:
        self._sent.append(await self.emit.send(topic, key, value))

    def sent(self, future: Any) -> None:
        """Track an output queued elsewhere (dead letters) so commit waits for it."""
        self._sent.append(future)

    def stage(self, event: EventT[bytes], writes: tuple[tuple[str, bytes | None], ...]) -> None:
        """Queue one event's writes (``None`` deletes) in order; later reads see them."""
        for key, value in writes:
            self.view.pending[key] = value
            self._writes.append((event, key, value))

    async def commit(self, extra: Sequence[tuple[EventT[bytes], bytes, bytes]] = ()) -> None:
        """Wait for every output's ack, then write the table (each write in its event)."""
        await asyncio.gather(*self._sent)
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
