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

With ``processing_guarantee=exactly_once`` the sender is transactional
(``agents.transactions``): 1 and 2 go in one Kafka transaction, the batch's
input offsets join it (``send_offsets_to_transaction``) and it commits before
3; Faust commits no offsets itself (``workarounds.read_committed``). A
``read_committed`` reader sees a batch's outputs, changelog and offsets
together or not at all: a replayed batch leaves no duplicate record.

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
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from agents.partitioning import Partitioner
from agents.store import PartitionStore

#: (key, value) of one record; a value of None is a tombstone.
Record = tuple[bytes | None, bytes | None]
#: (partition, offset, topic, value) of one input record of a stage: a pack.
Pack = tuple[int, int, str, bytes | None]


class Sender(Protocol):
    """Produce records in bulk: one Kafka record batch per chunk, one ack per chunk."""

    async def partitioner(self, topic: str) -> Partitioner:
        """Kafka's default partitioner over the topic's partitions (cached)."""

    async def send_records(
        self, topic: str, partition: int, records: Sequence[Record]
    ) -> list[tuple[Awaitable[Any], int]]:
        """Queue ``records`` in order; each (future, n) resolves (RecordMetadata with the
        chunk's base offset) when the broker has the chunk's ``n`` records."""


class StageBatch(Protocol):
    """One batch of a stateful stage, as ``commit_in_steps`` drives it."""

    #: packs taken, and the events in them, so far
    packs: int
    events: int

    async def pack(self, partition: int, offset: int, topic: str, value: bytes | None) -> None:
        """Decide one input pack (its outputs are queued until ``commit``)."""

    async def commit(self) -> None:
        """Commit the batch in the checkpoint order."""

    def following(self) -> StageBatch:
        """The stage's next batch, once this one has committed."""


async def commit_in_steps(batch: StageBatch, packs: Sequence[Pack], max_events: int) -> None:
    """Take ``packs`` in order and commit them: once, or with ``max_events`` each time
    a batch has taken that many events (at a pack boundary), each step a whole
    checkpoint. A backlog's take of full packs (32 of 500 events) then commits in
    steps and its outputs flow steadily. A crash between steps replays the take
    from its first pack; the replay marks skip what the committed steps decided.
    """
    for partition, offset, topic, value in packs:
        await batch.pack(partition, offset, topic, value)
        if max_events and batch.events >= max_events:
            await batch.commit()
            batch = batch.following()
    if batch.packs:
        await batch.commit()


@runtime_checkable
class Transactional(Protocol):
    """A sender whose records of a batch go in one Kafka transaction (``agents.transactions``)."""

    async def begin(self) -> None:
        """Begin the batch's transaction (the producer started, older ones fenced)."""

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Add the input offsets (next to read, per (topic, partition)) and commit."""


class AiokafkaSender:
    """Record batches built directly (``create_batch``/``send_batch``) on an aiokafka producer.

    A keyed send through ``AIOKafkaProducer.send`` costs a future, a
    partitioner call and an accumulator append per record (a fifth of a
    worker's CPU, py-spy); a batch per partition costs one future.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer  # an AIOKafkaProducer, or a callable returning one
        self._partitioners: dict[str, Partitioner] = {}

    def _aiokafka(self) -> Any:
        p = self._producer
        return p() if callable(p) else p

    async def partitioner(self, topic: str) -> Partitioner:
        part = self._partitioners.get(topic)
        if part is None:
            n = len(await self._aiokafka().partitions_for(topic))
            part = self._partitioners[topic] = Partitioner(n)
        return part

    async def send_records(
        self, topic: str, partition: int, records: Sequence[Record]
    ) -> list[tuple[Awaitable[Any], int]]:
        producer = self._aiokafka()
        out: list[tuple[Awaitable[Any], int]] = []
        batch, n = producer.create_batch(), 0
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                out.append((await producer.send_batch(batch, topic, partition=partition), n))
                batch, n = producer.create_batch(), 0
                if batch.append(key=key, value=value, timestamp=None) is None:
                    raise ValueError(f"a record for {topic} is larger than a producer batch")
            n += 1
        if n:
            out.append((await producer.send_batch(batch, topic, partition=partition), n))
        return out


def faust_sender(app: Any) -> AiokafkaSender:
    """The app's own aiokafka producer (Faust's ``Topic.send`` is not used)."""
    return AiokafkaSender(lambda: app.producer._producer)


#: Called with (phase, seconds) as a batch passes each phase.
Timing = Callable[[str, float], None]


def _no_timing(phase: str, seconds: float) -> None:
    return None


#: The checkpoints committing now: stage -> (the phase it waits in, since when, monotonic).
#: A fail-stop names them (``agents.guard``): which ack a stuck batch was waiting for.
COMMITTING: dict[str, tuple[str, float]] = {}


def committing(now: float | None = None) -> str:
    """What the committing checkpoints wait for, for a log line (names and seconds only).

    >>> COMMITTING["decide"] = ("changelog", 10.0)
    >>> committing(now=62.5)
    'decide waits for its changelog acks since 52.5 s'
    >>> del COMMITTING["decide"]; committing()
    'no checkpoint committing'
    """
    now = time.monotonic() if now is None else now
    waits = [
        f"{stage} waits for its {phase} acks since {now - since:.1f} s"
        if phase in ("outputs", "changelog")
        else f"{stage} in its {phase} step since {now - since:.1f} s"
        for stage, (phase, since) in sorted(COMMITTING.items())
    ]
    return "; ".join(waits) or "no checkpoint committing"


class Checkpoint:
    def __init__(
        self,
        sender: Sender,
        store: PartitionStore,
        timing: Timing = _no_timing,
        name: str = "",
    ) -> None:
        self.sender = sender
        self.store = store
        self.timing = timing
        self.name = name  # the stage, in COMMITTING while it commits (none: not tracked)
        self.started = time.monotonic()
        self._outputs: dict[tuple[str, int | None], list[Record]] = {}
        self._staged: dict[int, dict[bytes, bytes | None]] = {}
        self._consumed: dict[tuple[str, int], int] = {}
        self._spread = itertools.count()
        self.transaction = sender if isinstance(sender, Transactional) else None

    def send(
        self, topic: str, key: bytes | None, value: bytes, partition: int | None = None
    ) -> None:
        """Queue an output record: to ``partition``, else where Kafka's default partitioner
        puts ``key`` (round robin without a key)."""
        self._outputs.setdefault((topic, partition), []).append((key, value))

    def stage(self, partition: int, key: bytes, value: bytes | None) -> None:
        """The key's value at the end of the batch (a later call for the key wins)."""
        self._staged.setdefault(partition, {})[key] = value

    @property
    def staged(self) -> Mapping[int, Mapping[bytes, bytes | None]]:
        """What ``stage`` collected: partition -> key -> value at the end of the batch."""
        return self._staged

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        """An input record of the batch: with a transaction, its offset is committed in it."""
        nxt = offset + 1
        if self._consumed.get((topic, partition), -1) < nxt:
            self._consumed[(topic, partition)] = nxt

    async def _partitioned(self) -> dict[tuple[str, int], list[Record]]:
        out: dict[tuple[str, int], list[Record]] = {}
        for (topic, partition), records in self._outputs.items():
            if partition is not None:
                out.setdefault((topic, partition), []).extend(records)
                continue
            part = await self.sender.partitioner(topic)
            n = part.partitions
            for key, value in records:
                p = part(key) if key is not None else next(self._spread) % n
                out.setdefault((topic, p), []).append((key, value))
        return out

    async def commit(self) -> None:
        try:
            await self._commit()
        finally:
            COMMITTING.pop(self.name, None)

    async def _commit(self) -> None:
        mark = time.monotonic()
        self.timing("process", mark - self.started)
        self._waiting("outputs", mark)
        txn = self.transaction
        if txn is not None:
            await txn.begin()
        sent: list[Awaitable[Any]] = []  # 1. sinks
        for (topic, partition), records in (await self._partitioned()).items():
            sent.extend(f for f, _ in await self.sender.send_records(topic, partition, records))
        await asyncio.gather(*sent)
        mark = self._phase("outputs", mark)
        self._waiting("changelog", mark)
        topic = self.store.changelog_topic
        pending = []
        for partition, staged in self._staged.items():  # 2. changelog
            chunks = await self.sender.send_records(topic, partition, list(staged.items()))
            pending.append((partition, staged, chunks))
        acked = []
        for partition, staged, chunks in pending:
            metadata = await asyncio.gather(*(f for f, _ in chunks))
            last = max(int(m.offset) + n - 1 for m, (_, n) in zip(metadata, chunks, strict=True))
            acked.append((partition, staged, last))
        mark = self._phase("changelog", mark)
        if txn is not None:  # outputs, changelog and input offsets visible together
            self._waiting("transaction commit", mark)
            await txn.commit(self._consumed)
            mark = self._phase("commit", mark)
        for partition, staged, last in acked:
            self.store.write(partition, staged, last)  # 3. local store + offset
        self._phase("store", mark)
        # 4. the caller returns; Faust acks the inputs and commits their offsets later
        # (with a transaction they were committed in it, above).

    def _waiting(self, phase: str, since: float) -> None:
        if self.name:
            COMMITTING[self.name] = (phase, since)

    def _phase(self, name: str, since: float) -> float:
        now = time.monotonic()
        self.timing(name, now - since)
        return now
