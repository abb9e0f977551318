"""Stage 1, the stateless edge: read the bank's feed in bulk, validate, dead-letter, route.

No state, so no Faust: an aiokafka consumer (Faust's own transport) in its own
consumer group (``<app_id>-ingest``) inside the worker reads the feed many
records at a time. Per fetched batch:

1. each message becomes a ``Transaction`` or a ``DeadLetter``
   (``rewards.validate.decode``, never raises);
2. valid events are packed per target partition (``schemas.packed``): one
   record per ``txns-by-payer`` partition (key = the payer, hashed as Kafka's
   default partitioner does), one per ``payments-by-pair`` partition;
3. packs and dead letters are produced; **every one acknowledged**;
4. only then are the feed offsets committed.

With ``processing_guarantee=exactly_once`` 3 and 4 are one Kafka transaction
(``agents.transactions``): the feed offsets join it through
``send_offsets_to_transaction`` for the edge's group, and the feed is read
``read_committed``.

A crash before 4 re-reads the batch: the packs carry the same feed positions,
so the decide stage's replay marks skip what it already applied, and dead
letters repeat identically. A rebalance waits for the batch in flight to finish
and commit (``on_partitions_revoked``) before the partitions move; a commit
refused because the group moved on is harmless for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from agents import dead_letters, guard
from agents.checkpoint import COMMITTING
from agents.metrics import Metrics
from agents.partitioning import PairPartitioner, Partitioner
from rewards.circular import pair_key
from rewards.validate import Source, decode
from rewards.windows import epoch_ms
from schemas.common import TxnKind, TxnStatus
from schemas.dead_letter import DeadLetter
from schemas.encode import dump_json
from schemas.packed import encode_packs
from schemas.transaction import Transaction
from workarounds.continuity import Continuity, OnGap, fail_on_gap

log = logging.getLogger(__name__)


def routed_item(txn: Transaction, source: str, now_ns: int) -> bytes:
    """One ``RoutedTransaction`` envelope, encoded (``schemas.routed``)."""
    return b'{"type":"txn","txn":%s,"source":"%s","ingested_ns":%d}' % (
        dump_json(txn),
        source.encode(),
        now_ns,
    )


def pair_item(txn: Transaction, source: str, now_ns: int) -> bytes | None:
    """One ``PairPayment``, encoded; only SUCCESS payments between two users count."""
    if (
        txn.kind is not TxnKind.PAYMENT
        or txn.status is not TxnStatus.SUCCESS
        or txn.payer_vpa == txn.payee_vpa
    ):
        return None
    return (
        b'{"txn_id":"%s","payer_vpa":"%s","payee_vpa":"%s","t_ms":%d,"source":"%s",'
        b'"ingested_ns":%d}'
        % (
            txn.txn_id.encode(),
            txn.payer_vpa.encode(),
            txn.payee_vpa.encode(),
            epoch_ms(txn.event_time),
            source.encode(),
            now_ns,
        )
    )


@dataclass
class Routed:
    """One fetched batch, validated and packed: what the edge sends for it."""

    packs: dict[int, list[bytes]] = field(default_factory=dict)
    pair_packs: dict[int, list[bytes]] = field(default_factory=dict)
    letters: list[DeadLetter] = field(default_factory=list)
    valid: int = 0


def route(
    messages: Sequence[tuple[str, int, int, bytes | None]],
    by_payer: Partitioner,
    by_pair: PairPartitioner | None,
    now_ns: int,
) -> Routed:
    """Validate and pack (topic, partition, offset, value) messages, in order; pure."""
    out = Routed()
    for topic, partition, offset, value in messages:
        where = Source(topic, partition, offset)
        try:
            result = decode(value, where)
            if isinstance(result, DeadLetter):
                out.letters.append(result)
                continue
            source = str(where)
            payer = result.payer_vpa.encode()
            item = routed_item(result, source, now_ns)
            pair = pair_item(result, source, now_ns) if by_pair is not None else None
        except Exception as exc:  # a bug of ours: park the message, go on
            out.letters.append(dead_letters.internal_error(where, exc, value or b""))
            continue
        out.packs.setdefault(by_payer(payer), []).append(item)
        out.valid += 1
        if pair is not None and by_pair is not None:
            key = pair_key(result.payer_vpa, result.payee_vpa).encode()
            out.pair_packs.setdefault(by_pair(key), []).append(pair)
    return out


@dataclass(frozen=True)
class EdgeConfig:
    bootstrap: list[str]
    group: str
    feed: str
    by_payer: str
    by_pair: str | None
    dead_letters: str
    partitions: int
    max_records: int = 5000
    fetch_max_wait_ms: int = 100
    #: how long a batch may wait to fill up to ``max_records`` once records arrive
    fill_ms: int = 10
    session_timeout_ms: int = 10_000
    rebalance_timeout_ms: int = 10_000
    linger_ms: int = 0
    gaps: Literal["fail", "count"] = "fail"
    #: TLS/SASL keyword arguments for both aiokafka clients (``topologies.security``)
    client_options: dict[str, Any] = field(default_factory=dict)
    #: exactly_once: forwards and feed offsets of a batch in one transaction
    #: (``agents.transactions``); None: at-least-once, offsets committed after the acks
    transactional_id: str | None = None
    transaction_timeout_ms: int = 15_000


class _Revoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, edge: Edge) -> None:
        self.edge = edge

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.edge.batch_lock:  # the batch in flight finishes and commits first
            await self.edge.committing()
            await self.edge.commit_now()  # a last try; if it fails the new owner re-reads
            self.edge.forget(revoked)
            self.edge.continuity_reset()
            # Until the new assignment the consumer may still fetch the old one's
            # partitions, past their commits; such records are left (see ``_run``).
            self.edge.rebalancing = True

    async def on_partitions_assigned(self, assigned: Any) -> None:
        consumer = self.edge._consumer
        if consumer is None:
            return
        never: list[Any] = []
        for tp in assigned:  # for the lag gauge and the first record's check
            try:
                offset = await consumer.committed(tp)
            except KafkaError:
                self.edge.committed.pop(tp, None)  # unknown: neither is done for it
                continue
            if offset is None:
                never.append(tp)
            else:
                self.edge.committed[tp] = offset
        if never:  # never committed: the consumer starts at the log start (earliest)
            try:
                self.edge.committed.update(await consumer.beginning_offsets(never))
            except KafkaError:
                for tp in never:
                    self.edge.committed.pop(tp, None)
        self.edge.continuity_reset()
        self.edge.rebalancing = False


class Edge:
    def __init__(self, config: EdgeConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._by_payer = Partitioner(config.partitions)
        self._by_pair = PairPartitioner(config.partitions) if config.by_pair else None
        on_gap: OnGap = fail_on_gap if config.gaps == "fail" else self._count_gap
        self._generation = 0
        #: between a revocation and the next assignment: fetched records are left
        self.rebalancing = False
        self._continuity = Continuity(on_gap, lambda: self._generation, self._committed_at)
        self.committed: dict[TopicPartition, int] = {}
        self._commit: asyncio.Task[None] | None = None
        #: offsets whose forwards are acknowledged but not yet committed
        self._to_commit: dict[TopicPartition, int] = {}
        self._timing = metrics.timing("ingest")

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.config
        txn: dict[str, Any] = {}
        if cfg.transactional_id is not None:
            txn = {
                "transactional_id": cfg.transactional_id,
                "transaction_timeout_ms": cfg.transaction_timeout_ms,
            }
        self._producer = AIOKafkaProducer(
            bootstrap_servers=cfg.bootstrap,
            acks="all",
            **txn,
            linger_ms=cfg.linger_ms,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            **cfg.client_options,
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap,
            group_id=cfg.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=cfg.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=max(cfg.session_timeout_ms // 3, 100),
            rebalance_timeout_ms=cfg.rebalance_timeout_ms,
            isolation_level="read_committed" if txn else "read_uncommitted",
            **cfg.client_options,
        )
        self._consumer.subscribe([cfg.feed], listener=_Revoke(self))
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="ingest-edge")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop ends only on stop: an error outside a batch must not leave the
        worker up with nothing read (a batch's own errors fail-stop in its guard)."""
        if self._stopping or task.cancelled():
            return
        if (exc := task.exception()) is not None:
            guard.fail_stop("ingest", exc)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in flight (bounded), then leave the group and close."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    # ------------------------------------------------------------------ the loop
    def continuity_reset(self) -> None:
        self._generation += 1

    def _committed_at(self, tp: tuple[str, int]) -> int | None:
        """The group's committed offset of a feed partition (its log start if none), as
        this edge last knew it: the first record after a rebalance must not lie beyond it."""
        return self.committed.get(TopicPartition(*tp))

    def _count_gap(self, topic: str, partition: int, first: int, last: int) -> None:
        self.metrics.input_offset_gaps.labels(topic=topic).inc(last - first + 1)
        log.warning(
            "%s[%s]: offsets %s..%s never delivered",
            topic,
            partition,
            first,
            last,
            extra=asdict(Source(topic, partition, first)),
        )

    async def _fetch(self) -> dict[TopicPartition, list[ConsumerRecord[Any, Any]]]:
        """Records as they come, then up to ``fill_ms`` more to fill the batch."""
        consumer, cfg = self._consumer, self.config
        assert consumer is not None
        fetched: dict[TopicPartition, list[ConsumerRecord[Any, Any]]] = await consumer.getmany(
            timeout_ms=cfg.fetch_max_wait_ms, max_records=cfg.max_records
        )
        n = sum(len(v) for v in fetched.values())
        deadline = time.monotonic() + cfg.fill_ms / 1000
        while fetched and n < cfg.max_records and not self._stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            more = await consumer.getmany(
                timeout_ms=int(left * 1000) + 1, max_records=cfg.max_records - n
            )
            for tp, records in more.items():
                fetched.setdefault(tp, []).extend(records)
                n += len(records)
        return fetched

    async def _run(self) -> None:
        while not self._stopping:
            generation = self._generation
            try:
                fetched = await self._fetch()
            except KafkaError as exc:
                log.warning("ingest edge: fetch failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            if not fetched:
                if self._to_commit and (self._commit is None or self._commit.done()):
                    await self.committing()  # a commit failed: try again
                    self._commit = asyncio.create_task(self.commit_now())
                continue
            async with self.batch_lock:  # checked under it: a revocation takes it too
                stale = generation != self._generation or self.rebalancing
                if not stale:
                    await guard.whole_batch("ingest", self._batch(fetched))
            if stale:  # outside the lock: the lookups may wait for the rebalance
                await self._leave(fetched)
        await self.committing()
        await self.commit_now()

    async def _leave(self, fetched: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """A batch fetched across a rebalance (or during one): some records may be the old
        assignment's, read past its commits. Nothing of it is sent or committed; the
        partitions this worker holds now are read again from their committed offsets
        (the others are their new owners' to read)."""
        consumer = self._consumer
        assert consumer is not None
        held = [tp for tp in fetched if tp in consumer.assignment()]
        log.info("ingest edge: a rebalance during the fetch; its records are read again")
        for tp in held:
            try:
                offset = await consumer.committed(tp)
            except KafkaError:  # the coordinator busy: the offset this edge last knew
                offset = self.committed.get(tp)
            with contextlib.suppress(IllegalStateError):  # gone meanwhile: its owner's
                if offset is None or offset <= 0:  # never committed: from the start
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)

    async def _batch(self, fetched: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        started = time.monotonic()
        records = [r for batch in fetched.values() for r in batch]
        self._continuity.check_positions(
            [(r.topic, r.partition, r.offset) for r in records]
        )  # raises before anything is sent: the worker fail-stops and re-reads
        routed = route(
            [(r.topic, r.partition, r.offset, r.value) for r in records],
            self._by_payer,
            self._by_pair,
            time.time_ns(),
        )
        mark = time.monotonic()
        self._timing("process", mark - started)
        offsets = {tp: batch[-1].offset + 1 for tp, batch in fetched.items()}
        if self.config.transactional_id is not None:
            await self._send_in_transaction(routed, offsets)
            self._timing("outputs", time.monotonic() - mark)
            return
        await self._send(routed)
        self._timing("outputs", time.monotonic() - mark)
        # The commit runs while the next batch is fetched and routed; commits stay in order.
        await self.committing()
        self._to_commit.update(offsets)
        self._commit = asyncio.create_task(self.commit_now())

    async def _send_in_transaction(
        self, routed: Routed, offsets: dict[TopicPartition, int]
    ) -> None:
        """Forwards and feed offsets in one transaction: visible together or not at all.

        A failure escapes to the batch guard (fail-stop, nothing committed); the
        restarted producer, same ``transactional_id``, aborts what was left open.
        """
        producer = self._producer
        assert producer is not None
        await producer.begin_transaction()
        await self._send(routed)
        started = time.monotonic()
        await producer.send_offsets_to_transaction(offsets, self.config.group)
        await producer.commit_transaction()
        self._timing("commit", time.monotonic() - started)
        self.committed.update(offsets)

    async def committing(self) -> None:
        """Wait for the commit in flight, if any."""
        task, self._commit = self._commit, None
        if task is not None:
            await task

    async def _send(self, routed: Routed) -> None:
        producer, cfg = self._producer, self.config
        assert producer is not None
        futures: list[asyncio.Future[Any]] = []
        streams = [(cfg.by_payer, routed.packs)]
        if cfg.by_pair is not None:
            streams.append((cfg.by_pair, routed.pair_packs))
        for topic, per_partition in streams:
            for partition, items in per_partition.items():
                for value in encode_packs(items):
                    futures.append(await producer.send(topic, value, partition=partition))
        for letter in routed.letters:
            value = dead_letters.counted(letter, self.metrics)
            futures.append(await producer.send(cfg.dead_letters, value))
        # Every forward acknowledged before the feed offsets move: a refused one
        # fails the batch (agents.guard), it is never committed past.
        COMMITTING["ingest"] = ("outputs", time.monotonic())
        try:
            await asyncio.gather(*futures)
        finally:
            COMMITTING.pop("ingest", None)

    def forget(self, revoked: Any) -> None:
        """Partitions gone to another worker: their uncommitted offsets are its to re-read."""
        for tp in revoked:
            self._to_commit.pop(tp, None)

    async def commit_now(self) -> None:
        """Commit what is acknowledged; on failure keep it for the next try.

        A refused commit is never a loss: the feed is re-read from the last
        commit and the replay marks skip what was already decided.
        """
        consumer = self._consumer
        if consumer is None or not self._to_commit:
            return
        assigned = consumer.assignment()
        for tp in [tp for tp in self._to_commit if tp not in assigned]:
            del self._to_commit[tp]  # gone to another owner, who reads it from its commit
        offsets = dict(self._to_commit)
        if not offsets:
            return
        started = time.monotonic()
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, KafkaError) as exc:
            log.warning("ingest edge: commit failed (%s); will try again", type(exc).__name__)
            return
        self._timing("commit", time.monotonic() - started)
        self.committed.update(offsets)
        for tp, offset in offsets.items():
            if self._to_commit.get(tp) == offset:
                del self._to_commit[tp]

    # ------------------------------------------------------------------ metrics
    def lag(self) -> dict[tuple[str, int], int]:
        """Messages between the committed offset and the end, per assigned feed partition."""
        consumer = self._consumer
        if consumer is None:
            return {}
        out: dict[tuple[str, int], int] = {}
        try:
            assigned = consumer.assignment()
        except Exception:
            return {}
        for tp in assigned:
            try:
                end = consumer.highwater(tp)
            except Exception:
                end = None
            if end is None:
                continue
            out[(tp.topic, tp.partition)] = max(end - self.committed.get(tp, 0), 0)
        return out
