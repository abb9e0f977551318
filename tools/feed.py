"""Produce the synthetic feed (``tools.feedgen``) to the broker, optionally paced."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics


@dataclass(frozen=True, slots=True)
class FeedStats:
    sent: int
    bad: int
    seconds: float
    farmers: int = 0

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
    fraud_share: float = 0.0,
    truth_file: Path | None = None,
    truth: dict[str, str] | None = None,
    key_by_payer: bool = False,
) -> FeedStats:
    """Send ``count`` messages; with ``rate`` > 0, no faster than that many per second.

    With ``truth_file``, write who farms and how (``{"vpa": "velocity", ...}``)
    so detection can be scored; the file names users, so keep it with test data.
    ``truth`` (a dict) receives the same in memory. With ``key_by_payer``,
    every valid message is keyed by its lowercased ``payer_vpa`` (bad ones keep
    the generator's key), so each user's events stay on one feed partition in
    produce order: a replay of the topic in partition/offset order then sees
    each user's events in the order the worker decides them (the chaos suite
    relies on that for its exact comparison).
    """
    prod = producer(bootstrap)
    sent = bad = 0
    truth = {} if truth is None else truth
    started = time.monotonic()
    try:
        for message in generate(
            count, seed, bad_share=bad_share, fraud_share=fraud_share, truth=truth
        ):
            if rate > 0:
                due = started + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            key = message.key
            if key_by_payer and message.valid and message.value is not None:
                key = str(orjson.loads(message.value)["payer_vpa"]).lower().encode()
            prod.send(topic, key=key, value=message.value)
            sent += 1
            bad += not message.valid
        prod.flush()
    finally:
        prod.close()
    if truth_file is not None:
        truth_file.write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")
    return FeedStats(sent, bad, time.monotonic() - started, len(truth))
