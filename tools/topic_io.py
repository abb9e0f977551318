"""Reading and writing topics for the tools, the demo, the bench and the tests (kafka-python).

Every client takes the environment's security settings (``topologies.security``).
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

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


class TopicTail:
    """Read topics from the beginning and keep up with them, without a consumer group.

    Counts come from consuming, not from ListOffsets: some Kafka-protocol
    brokers (Tansu 0.6) report the latest offset of a partition as the base
    offset of its last batch + 1, so end offsets undercount batched topics.
    """

    def __init__(self, bootstrap: list[str], topics: Iterable[str]) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **kafka_python_options(),
        )
        assign_from_start(self.consumer, topics)
        self.records: dict[str, list[tuple[bytes | None, bytes | None]]] = {t: [] for t in topics}

    def poll(self, timeout_ms: int = 200) -> int:
        """Fetch what is new; return how many records arrived."""
        got = 0
        for tp, batch in self.consumer.poll(timeout_ms=timeout_ms, max_records=10_000).items():
            self.records[tp.topic].extend((r.key, r.value) for r in batch)
            got += len(batch)
        return got

    def count(self, topic: str) -> int:
        return len(self.records[topic])

    def close(self) -> None:
        self.consumer.close()
