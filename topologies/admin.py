"""Kafka admin for worker start-up and the tools (kafka-python): wait for the broker,
create the topics that are missing.

Works against any Kafka-protocol broker; nothing here knows about Tansu.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from topologies.security import kafka_python_options


def wait_for_broker(bootstrap: list[str], timeout_s: float = 30.0) -> None:
    """Block until the broker answers metadata requests, or raise TimeoutError."""
    kafka_python_options()  # an invalid REWARDS_KAFKA_* setting raises here, not in the loop
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, request_timeout_ms=3000, **kafka_python_options()
            )
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
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **kafka_python_options())
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
