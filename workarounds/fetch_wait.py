"""How long a fetch may wait at the broker for data: a setting, not Faust's fixed 1.5 s.

Faust builds its consumer with ``fetch_max_wait_ms=1500`` hard-coded. A broker
answers a fetch once ``fetch_min_bytes`` (1) are there or the wait is over;
a broker that holds the fetch for the whole wait when nothing was there at the
start (measured on Tansu 0.6) delays every record that arrives meanwhile by up
to the wait, once per hop: ~1.5 s per stage at the tail, three stages deep.
The consumer is made before it starts, so setting the value it hands its
fetcher at start is enough.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

_original = AIOKafkaConsumerThread._create_worker_consumer


def install(fetch_max_wait_ms: int) -> None:
    def create(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = _original(self, transport)
        consumer._fetch_max_wait_ms = fetch_max_wait_ms
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]
