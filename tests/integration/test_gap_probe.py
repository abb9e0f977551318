"""``workarounds.continuity.GapProbe`` on a real transactional topic (Apache Kafka).

A topic written in three transactions: committed, aborted, committed (two
records). Its offsets: 0 record, 1 marker, 2 aborted record, 3 marker, 4 and 5
records, 6 marker. The probe must find no record in the gaps a
``read_committed`` stream legitimately jumps (markers, aborted records) and
find every committed record in a range that holds some: those are records a
stream dropped.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from brokers.launcher import engine_from_env
from topologies.admin import ensure_topics
from topologies.security import aiokafka_options
from workarounds.continuity import GapProbe, RecordSkipped

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        engine_from_env() != "kafka",
        reason="needs broker transactions (REWARDS_TEST_BROKER=kafka); Tansu fails InitProducerId",
    ),
]

TOPIC = "gap-probe"


async def _write(bootstrap: str) -> list[int]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id="gap-probe-test", **aiokafka_options()
    )
    await producer.start()
    offsets = []
    try:
        for values, commit in (([b"a"], True), ([b"b"], False), ([b"c", b"d"], True)):
            await producer.begin_transaction()
            for value in values:
                meta = await producer.send_and_wait(TOPIC, value, partition=0)
                offsets.append(meta.offset)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    return offsets


def test_the_probe_tells_markers_and_aborted_records_from_dropped_records(broker):
    ensure_topics([broker.bootstrap], {TOPIC: 1})

    async def probe_all() -> None:
        assert await _write(broker.bootstrap) == [0, 2, 4, 5]
        probe = GapProbe([broker.bootstrap], aiokafka_options(), timeout_s=30)
        try:
            assert await probe.records_in(TOPIC, 0, 1, 1) == []  # a commit marker
            assert await probe.records_in(TOPIC, 0, 1, 3) == []  # marker, aborted, marker
            assert await probe.records_in(TOPIC, 0, 4, 4) == [4]
            assert await probe.records_in(TOPIC, 0, 0, 6) == [0, 4, 5]
            await probe.check(TOPIC, 0, 2, 3)  # nothing committed there: no error
            with pytest.raises(RecordSkipped, match=r"gap-probe\[0\] offsets 4\.\.5"):
                await probe.check(TOPIC, 0, 3, 6)
        finally:
            await probe.stop()

    asyncio.run(probe_all())
