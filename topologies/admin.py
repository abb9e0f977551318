"""Kafka admin and client plumbing for the CLI, the demo and the tests (kafka-python).

Works against any Kafka-protocol broker; nothing here knows about Tansu.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


def wait_for_broker(bootstrap: list[str], timeout_s: float = 30.0) -> None:
    """Block until the broker answers metadata requests, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            admin.list_topics()
            admin.close()
            return
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"broker {bootstrap} not reachable within {timeout_s}s: {last}")


def ensure_topics(bootstrap: list[str], topics: Mapping[str, int], replication: int = 1) -> None:
    """Create the topics that do not exist yet; leave existing ones as they are."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, replication)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def producer(bootstrap: list[str]) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
    )


def read_topic(
    bootstrap: list[str], topic: str, idle_s: float = 2.0, timeout_s: float = 60.0
) -> Iterator[tuple[bytes | None, bytes | None]]:
    """Yield (key, value) of every record in a topic, without joining a group.

    Uses ``assign`` so no group join (and no rebalance wait) is involved. Stops
    after ``idle_s`` without records once the end offsets have been reached.
    """
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
        consumer_timeout_ms=int(idle_s * 1000),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = False
            for record in consumer:
                got = True
                yield record.key, record.value
            if not got and all(consumer.position(tp) >= end[tp] for tp in tps):
                return
    finally:
        consumer.close()


def end_offsets_total(bootstrap: list[str], topics: Iterable[str]) -> dict[str, int]:
    """Sum of end offsets per topic: how many records each holds (no compaction here)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        out = {}
        for topic in topics:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            out[topic] = sum(consumer.end_offsets(tps).values()) if tps else 0
        return out
    finally:
        consumer.close()
