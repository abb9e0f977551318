"""Faust runs at-least-once while the stages run their own Kafka transactions.

With ``REWARDS_PROCESSING_GUARANTEE=exactly_once`` the stages commit each batch
in one Kafka transaction of their own (``agents.transactions``): outputs,
changelog records and the input offsets (``send_offsets_to_transaction``).
Faust's own ``exactly_once`` is per record and per partition (a transactional
producer per input partition, each record's sends in it) and knows nothing of
the stages' record batches, so Faust is configured ``at_least_once`` and three
of its behaviours are changed here:

* **its consumer reads ``read_committed``** (Faust sets that only for its own
  ``exactly_once``): the stages never see an aborted or still-open record of
  an internal topic, and table recovery never applies an aborted changelog
  record;
* **it commits no offsets itself**: the input offsets are committed inside the
  batch's transaction; Faust's periodic commit would only repeat them, and
  with the transaction markers between records (offsets no record ever has)
  it could commit an offset *lower* than the transaction did;
* **table recovery ends at the last committed record**: Faust's recovery
  waits until it has applied the record at ``end offset - 1``; in a
  transactional changelog that offset is a commit or abort marker, never
  delivered (Faust handles this only for its own ``exactly_once``), so the
  recovery would never end. The end is taken as the offset of the last record
  a ``read_committed`` read delivers below the last stable offset.

One check of Faust's is off with it (``recovery_consistency_check``, in
``topologies.app``): a store written after its own transaction committed can
be ahead of that end while an older transaction on the same changelog
partition is still open (a killed worker's, until its timeout: the last stable
offset stays at its first record). Faust calls that a corrupt store
(``ConsistencyError``) and the worker crashed at recovery (seen once in the
kill -9 storm with a replacement: persisted 648, end 535). The store is then
simply complete: nothing is left to recover for that partition.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables.recovery import Recovery
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger(__name__)


async def committed_offsets(
    consumer: AIOKafkaConsumer, tp: TopicPartition, start: int, stop: int, deadline: float
) -> list[int]:
    """The offsets in ``[start, stop)`` that hold a record a ``read_committed`` read
    delivers (``consumer``: assigned ``tp``, ``read_committed``), in order; markers
    and aborted records hold none. ``TimeoutError`` past ``deadline`` (monotonic)."""
    consumer.seek(tp, start)
    found: list[int] = []
    while await consumer.position(tp) < stop:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading {tp.topic}[{tp.partition}] {start}..{stop - 1} back")
        fetched = await consumer.getmany(tp, timeout_ms=500)
        found.extend(r.offset for r in fetched.get(tp, []) if start <= r.offset < stop)
    return found


async def last_committed_records(
    bootstrap: Any,
    tps: Iterable[TopicPartition],
    client_options: Mapping[str, Any],
    timeout_s: float = 30.0,
) -> dict[TopicPartition, int]:
    """Per partition, the offset of the last record a ``read_committed`` read delivers
    (-1: none), searching back from the last stable offset in growing windows."""
    wanted = list(tps)
    out = dict.fromkeys(wanted, -1)
    if not wanted:
        return out
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
        **client_options,
    )
    await consumer.start()
    try:
        consumer.assign(wanted)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(wanted)
        starts: dict[TopicPartition, int] = await consumer.beginning_offsets(wanted)
        deadline = time.monotonic() + timeout_s
        for tp in wanted:
            end, start = ends.get(tp) or 0, starts.get(tp) or 0
            window, hi = 64, end
            while hi > start and out[tp] < 0:  # [hi, end) holds none: the window below
                lo = max(hi - window, start)
                found = await committed_offsets(consumer, tp, lo, hi, deadline)
                out[tp] = found[-1] if found else -1
                hi, window = lo, window * 4
    finally:
        await consumer.stop()
    return out


def install(client_options: Mapping[str, Any]) -> None:
    """Apply the three changes above (call once, before the app is built)."""
    create = AIOKafkaConsumerThread._create_worker_consumer  # may be patched already

    def create_read_committed(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._isolation_level = "read_committed"  # handed to its fetcher at start
        return consumer

    async def no_commit(self: AIOKafkaConsumerThread, offsets: Mapping[Any, int]) -> bool:
        return False  # committed inside the stages' transactions

    build = Recovery._build_highwaters

    async def build_highwaters(
        self: Recovery, consumer: Any, tps: set[Any], destination: Counter[Any], title: str
    ) -> None:
        await build(self, consumer, tps, destination, title)
        thread = consumer._thread
        bootstrap = thread._ensure_consumer()._client._bootstrap_servers
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        last = await last_committed_records(bootstrap, wanted, client_options)
        for tp in tps:
            found = last[TopicPartition(tp.topic, tp.partition)]
            if destination.get(tp) != found:
                log.info(
                    "%s[%s]: recovery ends at the last committed record, %s (reported %s)",
                    tp.topic,
                    tp.partition,
                    found,
                    destination.get(tp),
                )
            destination[tp] = found

    AIOKafkaConsumerThread._create_worker_consumer = create_read_committed  # type: ignore[method-assign]
    AIOKafkaConsumerThread.commit = no_commit  # type: ignore[method-assign]
    Recovery._build_highwaters = build_highwaters  # type: ignore[method-assign]
