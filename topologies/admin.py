"""Kafka admin and client plumbing for the CLI, the demo and the tests (kafka-python).

Works against any Kafka-protocol broker; nothing here knows about Tansu.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError


class GroupAdmin(KafkaAdminClient):  # type: ignore[misc]
    """Tansu 0.6 answers DescribeGroups with authorized-operation bits that
    kafka-python cannot name (it raises on 15); we never ask for them, so drop them."""

    def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.pop("authorized_operations", None)
        return obj


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


def ensure_topics(
    bootstrap: list[str],
    topics: Mapping[str, int],
    replication: int = 1,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet; leave existing ones as they are.

    ``configs``: topic configs by name (e.g. ``cleanup.policy``), for the ones created.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(
                name, partitions, replication, topic_configs=dict((configs or {}).get(name, {}))
            )
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
            _wait_listed(admin, [t.name for t in missing])
    finally:
        admin.close()


def _wait_listed(admin: KafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Apache Kafka lists a new topic a moment after CreateTopics returns (Tansu at once):
    wait, so that a consumer joining next is assigned its partitions."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            found = admin.describe_topics(names)
        except KafkaError:  # not known yet
            found = []
        listed = {t.get("name"): t for t in found if not t.get("error_code")}
        if all(listed.get(n) and listed[n].get("partitions") for n in names):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics {names} not in the metadata after {timeout_s:.0f}s")


def producer(bootstrap: list[str]) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=2 * 1024 * 1024,
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
            bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
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


def seed_group_offsets(
    bootstrap: list[str], group: str, topic_names: Iterable[str], timeout_s: float = 30.0
) -> int:
    """``_seed_group_offsets``, retried while the broker has no group coordinator yet
    (Apache Kafka right after start: COORDINATOR_NOT_AVAILABLE); -1 if it never had one.
    Best effort: the stall watch (``agents.guard.StallWatch``) is the second line."""
    names = list(topic_names)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _seed_group_offsets(bootstrap, group, names)
        except KafkaError:
            if time.monotonic() > deadline:
                return -1
            time.sleep(0.5)


def _seed_group_offsets(bootstrap: list[str], group: str, topic_names: Iterable[str]) -> int:
    """Commit the earliest offset for every partition of ``topic_names`` that ``group``
    has never committed on, while the group has no members; return how many.

    Why: Faust's consumer was seen never to fetch a partition that had neither
    records nor a committed offset when it was assigned (faust-streaming issue
    629; seen here in the broker-stall chaos run on the embedded broker and in
    a fail-over run on Apache Kafka). A partition with a committed offset is
    sought to it and read. With members in the group every partition has been
    committed on already (or they own it): then nothing is done. A commit the
    broker refuses is left alone (another worker starting at the same moment).
    """
    from kafka.structs import OffsetAndMetadata

    admin = GroupAdmin(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        info = admin.describe_groups([group]).get(group) or {}
        if info.get("members"):
            return 0
        done = admin.list_group_offsets({group: None}).get(group, {})
        tps = [
            TopicPartition(name, p)
            for name in topic_names
            for p in sorted(consumer.partitions_for_topic(name) or ())
        ]
        missing = [tp for tp in tps if tp not in done or done[tp].offset < 0]
        if not missing:
            return 0
        begin = consumer.beginning_offsets(missing)
        commits = {tp: OffsetAndMetadata(begin[tp], "", -1) for tp in missing}
        with contextlib.suppress(KafkaError):
            admin.alter_group_offsets(group, commits)
        return len(commits)
    finally:
        consumer.close()
        admin.close()
