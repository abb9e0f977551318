"""Produce the synthetic feed (``rewards.feedgen``) to the broker, optionally paced."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rewards.feedgen import generate
from topologies import topics
from topologies.admin import producer


@dataclass(frozen=True, slots=True)
class FeedStats:
    sent: int
    bad: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


def produce_feed(
    bootstrap: list[str],
    count: int,
    seed: int = 42,
    rate: float = 0.0,
    bad_share: float = 0.01,
    topic: str = topics.TRANSACTIONS,
) -> FeedStats:
    """Send ``count`` messages; with ``rate`` > 0, no faster than that many per second."""
    prod = producer(bootstrap)
    sent = bad = 0
    started = time.monotonic()
    try:
        for message in generate(count, seed, bad_share=bad_share):
            if rate > 0:
                due = started + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            prod.send(topic, key=message.key, value=message.value)
            sent += 1
            bad += not message.valid
        prod.flush()
    finally:
        prod.close()
    return FeedStats(sent, bad, time.monotonic() - started)
