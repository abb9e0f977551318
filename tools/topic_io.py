"""Reading and writing topics for the tools, the demo, the bench and the tests (kafka-python).

Every client takes the environment's security settings (``topologies.security``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from topologies.security import kafka_python_options


def producer(bootstrap: list[str]) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
        **kafka_python_options(),
    )


def assign_from_start(
    consumer: KafkaConsumer, topics: Iterable[str], unknown: Iterable[int] = ()
) -> None:
    """Read every partition of ``topics`` from its first offset, with no group.

    ``unknown``: the partitions to assume for a topic the consumer has no
    metadata for yet (none by default).
    """
    fallback = tuple(unknown)
    tps = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or fallback)
    ]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)


Fetched = dict[TopicPartition, list[ConsumerRecord]]


class TopicReader:
    """Read topics from their first offsets with no consumer group: the one reader of
    the tools, the demo, the bench and the tests.

    Counts come from consuming, not from ListOffsets: some Kafka-protocol
    brokers (Tansu 0.6) report the latest offset of a partition as the base
    offset of its last batch + 1, so end offsets undercount batched topics.
    ``unknown``: the partitions to assume for a topic without metadata yet;
    ``options``: kafka-python consumer tuning (fetch sizes, CRC checks).
    """

    def __init__(
        self,
        bootstrap: list[str],
        topics: Iterable[str],
        unknown: Iterable[int] = (),
        **options: Any,
    ) -> None:
        self.topics = list(topics)
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **options,
            **kafka_python_options(),
        )
        assign_from_start(self.consumer, self.topics, unknown)

    def fetch(self, timeout_ms: int = 200, max_records: int = 20_000) -> Fetched:
        """What is new since the last fetch, per partition (empty after ``timeout_ms``)."""
        got: Fetched = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        return got

    def drain(
        self, expect: int | None = None, timeout: float = 120.0, quiet_s: float = 1.0
    ) -> list[tuple[str, ConsumerRecord]]:
        """Every record, as (topic, record): at least ``expect``, then until ``quiet_s``
        pass with nothing new (so that anything beyond ``expect`` shows up too)."""
        out: list[tuple[str, ConsumerRecord]] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while True:
            got = self.fetch(timeout_ms=300)
            for tp, records in got.items():
                out.extend((tp.topic, r) for r in records)
            now = time.monotonic()
            if got:
                quiet_since = now
            if (expect is None or len(out) >= expect) and now - quiet_since > quiet_s:
                return out
            if now > deadline:
                raise TimeoutError(f"read {len(out)} records of {self.topics}, expected {expect}")

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_to_end(reader: TopicReader, poll: Callable[[], object], timeout: float = 60.0) -> None:
    """Call ``poll`` until every partition ``reader`` is assigned has been read to its
    high watermark as the fetch responses report it (exact on every broker, unlike
    ListOffsets on Tansu): everything on the topics now has been read, a condition,
    not a quiet period."""
    consumer = reader.consumer
    deadline = time.monotonic() + timeout
    while True:
        poll()
        behind = [
            tp
            for tp in consumer.assignment()
            if (hw := consumer.highwater(tp)) is None or consumer.position(tp) < hw
        ]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(behind)} partitions of {reader.topics} not read to their end")


class TopicTail(TopicReader):
    """A reader that keeps every (key, value) per topic, for counting and checking."""

    def __init__(self, bootstrap: list[str], topics: Iterable[str], **options: Any) -> None:
        super().__init__(bootstrap, topics, **options)
        self.records: dict[str, list[tuple[bytes | None, bytes | None]]] = {
            t: [] for t in self.topics
        }

    def poll(self, timeout_ms: int = 200) -> int:
        """Fetch what is new; return how many records arrived."""
        got = 0
        for tp, batch in self.fetch(timeout_ms=timeout_ms, max_records=10_000).items():
            self.records[tp.topic].extend((r.key, r.value) for r in batch)
            got += len(batch)
        return got

    def count(self, topic: str) -> int:
        return len(self.records[topic])
