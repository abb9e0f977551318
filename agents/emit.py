"""Send output records: a batch's outputs go to the producer as whole record batches.

Faust's ``Topic.send`` costs about a fifth of a worker's time per message
(measured: 1,536 → 1,907 events/s when grants and decisions skip it), and even
aiokafka's ``send`` costs a coroutine, a metadata check, a partitioner call
and an accumulator append per record. ``Outbox`` collects one processing
batch's records and hands them to the producer as one ``BatchBuilder`` per
topic partition (``send_batch``): the same partitioner, the same per-partition
order as one ``send`` per record, a fraction of the Python work (py-spy,
docs/performance.md). With ``processing_guarantee="exactly_once"`` each send
must go through Faust so it joins the transaction of the event being
processed; then we pay that price.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from faust.types import TopicT


class Emitter:
    def __init__(self, app: faust.App, transactional: bool) -> None:
        self._app = app
        self.transactional = transactional

    async def send(
        self, topic: TopicT, key: bytes | None, value: bytes, partition: int | None = None
    ) -> Awaitable[Any]:
        """Queue one record; the returned future resolves when the broker acknowledges it."""
        if self.transactional:
            return await topic.send(key=key, value=value, partition=partition)
        name = topic.get_topic_name()
        return await self._app.producer.send(name, key, value, partition, None, None)

    async def partitioner(self, topic: TopicT) -> Callable[[bytes], int]:
        """The partition the producer would pick for a key of ``topic`` (its partitioner)."""
        producer = self._producer()
        name = topic.get_topic_name()
        await producer.client._wait_on_metadata(name)
        partition_of = producer._partition

        def partition(key: bytes) -> int:
            return int(partition_of(name, None, None, None, key, None))

        return partition

    def outbox(self) -> Outbox:
        return Outbox(self)

    def _producer(self) -> Any:
        """The aiokafka producer under Faust's (started with the app)."""
        return self._app.producer._ensure_producer()  # type: ignore[attr-defined]


class Outbox:
    """One batch's output records, in the order they were added, per topic."""

    def __init__(self, emit: Emitter) -> None:
        self._emit = emit
        self._topics: dict[str, TopicT] = {}
        self._records: dict[str, list[Record]] = {}
        self._on_sent: dict[str, Callable[[Any, int], None]] = {}

    def add(
        self, topic: TopicT, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record; ``partition`` None: the producer's partitioner picks, by key."""
        name = topic.get_topic_name()
        records = self._records.get(name)
        if records is None:
            self._topics[name] = topic
            records = self._records[name] = []
        records.append((key, value, partition))

    def on_sent(self, topic: TopicT, callback: Callable[[Any, int], None]) -> None:
        """Call ``callback(topic_partition, last offset)`` as each batch sent to ``topic``
        is acknowledged (what Faust's table does per changelog record: the persisted
        offset of the local store)."""
        self._on_sent[topic.get_topic_name()] = callback

    def __len__(self) -> int:
        return sum(len(r) for r in self._records.values())

    async def flush(self) -> list[Awaitable[Any]]:
        """Hand everything to the producer; returns futures that resolve on the broker's ack."""
        records, self._records = self._records, {}
        futures: list[Awaitable[Any]] = []
        if self._emit.transactional:
            for name, recs in records.items():
                for key, value, fixed in recs:
                    assert value is not None, "tombstones go through the table in transactions"
                    futures.append(await self._emit.send(self._topics[name], key, value, fixed))
            return futures
        producer = self._emit._producer()
        for name, recs in records.items():
            await producer.client._wait_on_metadata(name)
            partition_of = producer._partition
            per_partition: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
            for key, value, fixed in recs:
                p = fixed if fixed is not None else partition_of(name, None, None, None, key, value)
                per_partition.setdefault(p, []).append((key, value))
            sent: list[tuple[Awaitable[Any], int]] = []  # (future, records in it)
            for partition, part in per_partition.items():
                builder = producer.create_batch()
                for key, value in part:
                    if builder.append(timestamp=None, key=key, value=value) is not None:
                        continue
                    if builder.record_count():  # full: send it, start the next one
                        fut = await producer.send_batch(builder, name, partition=partition)
                        sent.append((fut, builder.record_count()))
                        builder = producer.create_batch()
                        if builder.append(timestamp=None, key=key, value=value) is not None:
                            continue
                    # Larger than a whole batch on its own: the producer's own path.
                    fut = await producer.send(name, value, key=key, partition=partition)
                    sent.append((fut, 1))
                if builder.record_count():
                    fut = await producer.send_batch(builder, name, partition=partition)
                    sent.append((fut, builder.record_count()))
            callback = self._on_sent.get(name)
            for fut, count in sent:
                futures.append(fut)
                if callback is not None:
                    cast(asyncio.Future[Any], fut).add_done_callback(_when_ok(callback, count))
        return futures


Record = tuple[bytes | None, bytes | None, int | None]


def _when_ok(callback: Callable[[Any, int], None], count: int) -> Callable[[Any], None]:
    """On an ack: ``callback(topic_partition, offset of the last record of the batch)``."""

    def done(fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            meta = fut.result()  # a batch's metadata carries its base offset
            callback(meta.topic_partition, meta.offset + count - 1)

    return done


#: Largest pack record (many items for one partition in one Kafka record).
PACK_BYTES = 256 * 1024
#: Most items in one pack. Faust's ``take_events`` counts records, so a stage
#: reading packs takes ``batch_max // PACK_ITEMS`` records at a time to keep
#: its batches (and so the wait before their outputs leave) near ``batch_max``.
PACK_ITEMS = 250


def records_per_batch(batch_max: int) -> int:
    """How many records a stage reading packs takes at once."""
    return max(1, batch_max // PACK_ITEMS)


class Packer:
    """Items bound for one topic, grouped per partition and packed into few records.

    An item goes to the partition its key would go to on its own, so state
    stays co-partitioned; items keep their order within a partition.
    """

    def __init__(self, topic: TopicT, partition: Callable[[bytes], int]) -> None:
        self.topic = topic
        self._partition = partition
        self._items: dict[int, list[bytes]] = {}

    def add(self, key: bytes, item: bytes) -> None:
        self._items.setdefault(self._partition(key), []).append(item)

    def into(self, outbox: Outbox) -> None:
        for partition, items in self._items.items():
            chunk: list[bytes] = []
            size = 0
            for item in items:
                if chunk and (size + len(item) > PACK_BYTES or len(chunk) >= PACK_ITEMS):
                    outbox.add(self.topic, None, pack(chunk), partition)
                    chunk, size = [], 0
                chunk.append(item)
                size += len(item) + 1
            if chunk:
                outbox.add(self.topic, None, pack(chunk), partition)
        self._items = {}


def pack(items: list[bytes]) -> bytes:
    """``{"type":"pack","items":[...]}`` around already-encoded JSON items."""
    return b'{"type":"pack","items":[' + b",".join(items) + b"]}"
