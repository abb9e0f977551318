"""The replay tool of docs/operations.md (``tools.replay``) on a real broker.

It must refuse while a worker is in the group (the worker's next commit would
undo the reset), and move a group's committed offsets on the input topic to
the earliest offset, a given offset (clamped to the log) or a point in time.

The full stop → reset → restart cycle of the pipeline's own group is not run
here: the embedded broker (Tansu 0.6) keeps a departed member in the group and
refuses the reset with UNKNOWN_MEMBER_ID; real Kafka expires it.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from brokers.launcher import engine_from_env
from tests.integration.conftest import PARTITIONS
from tools.feed import produce_feed
from tools.replay import GroupNotEmpty, main, reset_offsets
from topologies import topics
from topologies.security import kafka_python_options

pytestmark = pytest.mark.integration

COUNT = 400


def committed(bootstrap: str, group: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=[bootstrap], **kafka_python_options())
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()
            if tp.topic == topics.TRANSACTIONS}  # fmt: skip


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def test_reset_refuses_a_live_group_and_moves_an_idle_one(broker, workers):
    worker = workers.start()
    before_ms = int(time.time() * 1000) - 60_000
    produce_feed([broker.bootstrap], count=COUNT, seed=5, bad_share=0.0)

    deadline = time.monotonic() + 90
    while not ready(worker.web_port):  # joined the group, partitions assigned
        assert time.monotonic() < deadline, worker.log_text()[-2000:]
        time.sleep(0.5)

    # The worker is a member of the pipeline's group: refused.
    with pytest.raises(GroupNotEmpty):
        reset_offsets([broker.bootstrap], "upi-rewards")
    assert main(["--bootstrap", broker.bootstrap, "--to-earliest"]) == 2
    assert worker.proc.poll() is None

    # A group without members: every mode moves the committed offsets.
    group = "replay-check"
    # Clamped to the ends the broker lists, on every partition (each holds records).
    # Apache Kafka lists the true ends, so there they add up to the feed exactly;
    # Tansu lists the last batch's base offset + 1, which undercounts.
    moved = reset_offsets([broker.bootstrap], group, offset=10**9)
    consumer = KafkaConsumer(
        bootstrap_servers=[broker.bootstrap], group_id=None, **kafka_python_options()
    )
    try:
        listed = consumer.end_offsets(
            [TopicPartition(topics.TRANSACTIONS, p) for p in range(PARTITIONS)]
        )
    finally:
        consumer.close()
    assert moved == {tp.partition: end for tp, end in listed.items()}
    assert len(moved) == PARTITIONS and all(end >= 1 for end in moved.values()), moved
    assert sum(moved.values()) <= COUNT
    if engine_from_env() == "kafka":
        assert sum(moved.values()) == COUNT, moved
    assert committed(broker.bootstrap, group) == moved
    assert reset_offsets([broker.bootstrap], group) == dict.fromkeys(range(PARTITIONS), 0)
    assert committed(broker.bootstrap, group) == dict.fromkeys(range(PARTITIONS), 0)
    # One partition to an offset inside its log (the embedded broker's end
    # offsets can lag the records just written, so stay within what it reported).
    part = max(moved, key=lambda p: moved[p])
    target = min(3, moved[part])
    only = reset_offsets([broker.bootstrap], group, offset=target, partitions=[part])
    assert only == {part: target}
    assert committed(broker.bootstrap, group)[part] == target
    by_time = reset_offsets([broker.bootstrap], group, timestamp_ms=before_ms)
    assert by_time == dict.fromkeys(range(PARTITIONS), 0)
