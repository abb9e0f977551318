"""Changelog recovery must read to the true end of each partition.

Faust decides that table recovery is complete when it has read up to the
partition's end offset as ListOffsets reports it. Some Kafka-protocol brokers
(measured on Tansu 0.6) report the latest offset as the *base offset of the
last record batch + 1*, so a changelog whose last batch holds several records
looks shorter than it is, recovery stops early and the tail of the state is
missing: a grant already made could be made again, a cap could be undercounted.

The high watermark in a Fetch response is right on every broker we have seen.
So, at recovery time only, we fetch once at the reported end − 1 and take the
larger of the two values. On a correct broker both agree and this costs one
fetch round trip per rebalance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

log = logging.getLogger(__name__)

_original = AIOKafkaConsumerThread._highwaters


async def true_end_offsets(
    bootstrap: Any,
    reported: Mapping[TopicPartition, int],
    client_options: Mapping[str, Any],
    timeout_ms: int = 2000,
) -> dict[TopicPartition, int]:
    """Return, per partition, max(reported end offset, Fetch high watermark)."""
    out = dict(reported)
    probe = [tp for tp, end in reported.items() if end is not None and end > 0]
    if not probe:
        return out
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **client_options
    )
    await consumer.start()
    try:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, reported[tp] - 1)
        await consumer.getmany(*probe, timeout_ms=timeout_ms)
        for tp in probe:
            hw = consumer.highwater(tp)
            if hw is not None and hw > out[tp]:
                log.warning(
                    "broker under-reported end offset of %s[%s]: %s < %s; using %s",
                    tp.topic,
                    tp.partition,
                    out[tp],
                    hw,
                    hw,
                )
                out[tp] = hw
    finally:
        await consumer.stop()
    return out


def install(client_options: Mapping[str, Any]) -> None:
    """Make Faust's recovery use the corrected end offsets (idempotent).

    ``client_options``: the aiokafka security options (``topologies.security``)
    for the probe consumer.
    """

    async def highwaters(self: AIOKafkaConsumerThread, partitions: list[TopicPartition]) -> Any:
        reported = await _original(self, partitions)
        if self.consumer.in_transaction:
            return reported
        consumer = self._ensure_consumer()
        bootstrap = consumer._client._bootstrap_servers
        return await true_end_offsets(bootstrap, reported, client_options)

    AIOKafkaConsumerThread._highwaters = highwaters  # type: ignore[method-assign]
