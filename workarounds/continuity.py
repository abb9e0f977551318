"""Every input record reaches its stage, in offset order, or the worker fail-stops.

Found with kill -9 (tests/integration/test_crash.py, packed records): around
the end of a table recovery, Faust's fetch loop can drop one fetched record
(it gives up delivering it when the flow is suspended, yet advances its read
offset) and the stream then carries on with the next offset. The record is
never processed, and Faust's commit logic goes past a single missing offset at
the head of its acked list. For the decide stage that record is lost for good:
its items carry feed offsets below the progress marks that later records set,
so even a replay would skip them.

So each stage checks, before it processes a batch, that per partition the
offsets continue where the last delivered record left off. On the internal
topics (``txns-by-payer``, ``payments-by-pair``) every offset holds a record
of ours (no transactions, no compaction), so a jump is a drop: it fails the
batch before a single event of it is acked (``agents.guard``), and the restart
reads again from the committed offset, which cannot be past the dropped record
because nothing after it was acked. On the bank's feed a jump can be legitimate
(transaction markers, compaction), so there the policy is a setting
(``REWARDS_FEED_OFFSET_GAPS``): ``fail`` (default) or ``count`` (metric only).

With transactions (``processing_guarantee=exactly_once``) a jump on an
internal topic is usually legitimate too: every commit leaves a marker at an
offset no record has, and an aborted transaction's records are never
delivered. A dropped record is still a jump, and the batch's transaction would
commit the input offsets past it. So each jump is read back (``GapProbe``):
a ``read_committed`` fetch of the missing offsets. Nothing there: markers or
aborted records, counted. A record there: it was dropped, and the batch fails
as above.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import EventT

from workarounds.read_committed import committed_offsets


class RecordSkipped(RuntimeError):
    """Offsets ``first..last`` of a partition never reached the stage."""

    def __init__(self, topic: str, partition: int, first: int, last: int) -> None:
        super().__init__(f"{topic}[{partition}] offsets {first}..{last} were not delivered")
        self.topic, self.partition, self.first, self.last = topic, partition, first, last


#: Called with (topic, partition, first missing offset, last missing offset).
OnGap = Callable[[str, int, int, int], None]


def fail_on_gap(topic: str, partition: int, first: int, last: int) -> None:
    raise RecordSkipped(topic, partition, first, last)


class Continuity:
    """The next offset expected per partition, for one stage, in one consumer generation."""

    def __init__(
        self,
        on_gap: OnGap,
        generation: Callable[[], int],
        committed: Callable[[tuple[str, int]], int | None] | None = None,
    ) -> None:
        self._on_gap = on_gap
        self._generation = generation
        #: the group's committed offset of a partition (None: not known): the first
        #: record after a rebalance must not lie beyond it
        self._committed = committed
        self._next: dict[Any, int] = {}
        #: where a partition without a committed offset starts (its log start), this
        #: generation: given by the caller for the partitions ``unknown`` names
        self._starts: dict[Any, int] = {}
        #: per partition, every offset below this one reached the stage (in this
        #: process, or the group's commit): a later generation may go on from there
        self._done: dict[Any, int] = {}
        #: partitions whose first record this generation passed unchecked
        self._unchecked: set[Any] = set()
        self._seen_generation: int | None = None

    def _sync_generation(self) -> None:
        generation = self._generation()
        if generation != self._seen_generation:
            # A rebalance: partitions may have moved and the consumer seeks to the
            # committed offsets (the log start where none), so the first record after
            # it must be there (a retention-deleted head would be a legitimate jump:
            # fail-stop then). A partition this process held before may go on where
            # it left off (records fetched before the rebalance).
            self._next.clear()
            self._starts.clear()
            self._unchecked.clear()
            self._seen_generation = generation

    def _expected(self, tp: tuple[str, int]) -> int | None:
        expected = self._next.get(tp)
        if expected is not None or self._committed is None:
            return expected
        base = self._committed(tp)
        if base is None:
            base = self._starts.get(tp)
        if base is None:
            return None  # not known: the first record passes as it comes
        done = self._done.get(tp)
        return base if done is None else max(base, done)

    def unknown(self, positions: Sequence[tuple[str, int, int]]) -> list[tuple[str, int]]:
        """Partitions of ``positions`` whose first record this generation has nothing to
        be checked against: no committed offset. Their log start is the caller's to
        look up (``start_at``), else their first record passes unchecked.

        Faust seeks such a partition to its log start, and its own commit guard is off
        there (``Consumer._new_offset`` trusts a committed offset only if non-zero): a
        record dropped at the head of a never-committed partition would be committed
        past (found on Apache Kafka by the rebalance chaos scenario).
        """
        self._sync_generation()
        if self._committed is None:
            return []
        out: list[tuple[str, int]] = []
        for topic, partition, _ in positions:
            tp = (topic, partition)
            if tp in self._starts:
                continue
            if tp not in out and tp not in self._next and self._committed(tp) is None:
                out.append(tp)
        return out

    def start_at(self, tp: tuple[str, int], offset: int) -> None:
        """``tp`` has no committed offset; its first record this generation is at ``offset``."""
        self._sync_generation()
        self._starts[tp] = offset

    def check(self, events: Sequence[EventT[bytes]]) -> None:
        """Call ``on_gap`` (which may raise) for records missing before any of ``events``."""
        self.check_positions(
            [(e.message.topic, e.message.partition, e.message.offset) for e in events]
        )

    def check_positions(self, positions: Sequence[tuple[str, int, int]]) -> None:
        """``check`` for (topic, partition, offset) triples in delivery order."""
        self._sync_generation()
        for topic, partition, offset in positions:
            tp = (topic, partition)
            expected = self._expected(tp)
            if expected is None:
                self._unchecked.add(tp)
            elif offset > expected:
                self._on_gap(topic, partition, expected, offset - 1)
            # offset < expected: a re-delivery after a seek back (rebalance,
            # recovery); the stage's own replay handling applies.
            self._next[tp] = offset + 1
            if tp not in self._unchecked and self._done.get(tp, 0) <= offset:
                self._done[tp] = offset + 1


def for_faust(app: Any, on_gap: OnGap = fail_on_gap) -> Continuity:
    """A ``Continuity`` that starts afresh with each consumer generation of ``app``,
    from the committed offsets Faust sought to (``Consumer._committed_offset``; it
    holds None for a partition never committed, and for one committed at 0)."""

    def committed(tp: tuple[str, int]) -> int | None:
        consumer = getattr(app, "_consumer", None)
        offsets = getattr(consumer, "_committed_offset", None) or {}
        found = offsets.get(tp)
        return int(found) if isinstance(found, int) and found > 0 else None

    return Continuity(on_gap, lambda: int(app.consumer_generation_id), committed)


class GapProbe:
    """Reads an internal topic's offset gap back, ``read_committed``: a record there was
    dropped on its way to the stage (``RecordSkipped``); none: markers, aborted records.
    And looks up where a partition without a committed offset starts (``log_start``).

    One consumer (no group) for the worker's stages, started at first use; one
    probe at a time. Under transactions a gap follows about every transaction of
    the writer, so a stage probes about once per input partition per batch.
    """

    def __init__(
        self,
        bootstrap: list[str],
        client_options: Mapping[str, Any],
        timeout_s: float = 30.0,
    ) -> None:
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": None,
            "enable_auto_commit": False,
            "isolation_level": "read_committed",
            # One record batch per fetch (the broker returns at least one, whatever
            # its size): the first one past the gap is all a probe needs to see.
            "max_partition_fetch_bytes": 1,
            "fetch_max_wait_ms": 100,
        }
        self.client_options = dict(client_options)
        self.timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(**self._options, **self.client_options)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def log_start(self, topic: str, partition: int) -> int:
        """The partition's first offset (its log start offset)."""
        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            found = await asyncio.wait_for(consumer.beginning_offsets([tp]), self.timeout_s)
            return max(int(found[tp]), 0)

    async def records_in(self, topic: str, partition: int, first: int, last: int) -> list[int]:
        """Offsets in ``first..last`` that hold a committed record (in order)."""
        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            deadline = time.monotonic() + self.timeout_s
            return await committed_offsets(consumer, tp, first, last + 1, deadline)

    async def check(self, topic: str, partition: int, first: int, last: int) -> None:
        """Raise ``RecordSkipped`` if a committed record lies in ``first..last``."""
        found = await self.records_in(topic, partition, first, last)
        if found:
            raise RecordSkipped(topic, partition, found[0], found[-1])

    async def stop(self) -> None:
        async with self._lock:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                await consumer.stop()
