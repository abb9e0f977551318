"""The commit order of one batch of a stateful stage, in one place.

1. **sinks**: every output record of the batch (grants, decisions, alerts,
   dead letters, packs for the next stage) is queued as it is made; ``commit``
   waits for the broker to acknowledge all of them;
2. **changelog**: then each key the batch changed is published once (the
   batch's last value) to the table's changelog partition, and acknowledged;
3. **local store**: then the records *and* the changelog offset they reached
   go into the partition's RocksDB in one write batch (``agents.store``);
4. **input offsets**: only then does the stage return, Faust acks the
   batch's input records, and its next offset commit may pass them.

So the local store is never ahead of its changelog, and the changelog never
ahead of the outputs. A crash anywhere replays the batch from the last input
commit: a key whose record reached the changelog carries the replay marks
of the inputs it covers (``rewards.state``), so those inputs are skipped
(nothing new is emitted); the others are decided again against the state
before the batch, identically, with the same ids. After a ``kill -9`` the
local store is kept: Faust replays only the changelog tail beyond the
persisted offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Protocol

from agents.store import PartitionStore


class Sender(Protocol):
    """Queue one record; the awaitable resolves (RecordMetadata) when the broker has it."""

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]: ...


class FaustSender:
    """Straight to the app's aiokafka producer (Faust's ``Topic.send`` costs ~20% more)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None
    ) -> Awaitable[Any]:
        fut: Awaitable[Any] = await self._app.producer.send(
            topic, key, value, partition, None, None
        )
        return fut


class Checkpoint:
    def __init__(self, sender: Sender, store: PartitionStore) -> None:
        self.sender = sender
        self.store = store
        self._sent: list[Awaitable[Any]] = []
        self._staged: dict[int, dict[bytes, bytes | None]] = {}

    async def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        self._sent.append(await self.sender.send(topic, key, value, partition))

    def sent(self, future: Awaitable[Any]) -> None:
        """Track an output queued elsewhere so ``commit`` waits for it too."""
        self._sent.append(future)

    def stage(self, partition: int, key: bytes, value: bytes | None) -> None:
        """The key's value at the end of the batch (a later call for the key wins)."""
        self._staged.setdefault(partition, {})[key] = value

    @property
    def outputs(self) -> int:
        return len(self._sent)

    async def commit(self) -> None:
        await asyncio.gather(*self._sent)  # 1. sinks
        topic = self.store.changelog_topic
        pending: list[tuple[int, dict[bytes, bytes | None], list[Awaitable[Any]]]] = []
        for partition, records in self._staged.items():  # 2. changelog
            futures = [
                await self.sender.send(topic, key, value, partition)
                for key, value in records.items()
            ]
            pending.append((partition, records, futures))
        for partition, records, futures in pending:
            metadata = await asyncio.gather(*futures)
            offset = max(int(m.offset) for m in metadata)
            self.store.write(partition, records, offset)  # 3. local store + offset
        # 4. the caller returns; Faust acks the inputs and commits their offsets later.
