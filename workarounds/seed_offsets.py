"""Give every stream partition a committed offset before Faust first reads it.

faust-streaming issue 629: a partition with no records and no committed
offset when assigned was seen never to be fetched. ``client_options``: the
kafka-python security options (``topologies.security``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from workarounds.group_admin import GroupAdmin


def seed_group_offsets(
    bootstrap: list[str],
    group: str,
    topic_names: Iterable[str],
    client_options: Mapping[str, Any],
    timeout_s: float = 30.0,
) -> int:
    """``_seed_group_offsets``, retried while the broker has no group coordinator yet
    (Apache Kafka right after start: COORDINATOR_NOT_AVAILABLE); -1 if it never had one.
    Best effort: the stall watch (``workarounds.stall_watch``) is the second line."""
    names = list(topic_names)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _seed_group_offsets(bootstrap, group, names, client_options)
        except KafkaError:
            if time.monotonic() > deadline:
                return -1
            time.sleep(0.5)


def _seed_group_offsets(
    bootstrap: list[str],
    group: str,
    topic_names: Iterable[str],
    client_options: Mapping[str, Any],
) -> int:
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

    admin = GroupAdmin(bootstrap_servers=bootstrap, **client_options)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **client_options)
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
