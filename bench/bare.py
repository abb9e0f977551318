"""The Faust floor: a bare agent that takes the feed in batches and does nothing with it.

``stream.take_events(5000, within=0.01)`` over ``upi.transactions``, raw bytes
(no deserializer, no table, no sends): what Faust itself costs per record.
When it has seen ``BENCH_COUNT`` events it writes a small JSON result to
``BENCH_RESULT``: events per second and its own CPU µs per event, both counted
from the first batch to the last (start-up and group join left out; the
first batch's events are not counted, its arrival starts the clock).

Run by ``python -m bench`` as a subprocess, configured from the environment:
``BENCH_BOOTSTRAP``, ``BENCH_DATA_DIR``, ``BENCH_WEB_PORT``, ``BENCH_COUNT``,
``BENCH_RESULT``; ``BENCH_GC_GEN0`` sets the young-collection threshold as the
worker's ``REWARDS_GC_GEN0`` does (unset: Python's 700).
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path
from typing import cast

import faust
import orjson
from faust.streams import Stream

if os.environ.get("BENCH_GC_GEN0"):
    gc.set_threshold(int(os.environ["BENCH_GC_GEN0"]), 10, 10)

BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092")
COUNT = int(os.environ.get("BENCH_COUNT", "0"))
RESULT = Path(os.environ.get("BENCH_RESULT", "var/bench/bare.json"))

app = faust.App(
    "bench-bare",
    broker=f"kafka://{BOOTSTRAP}",
    store="memory://",
    datadir=os.environ.get("BENCH_DATA_DIR", "var/bench/bare"),
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6098")),
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    topic_partitions=8,
    consumer_auto_offset_reset="earliest",
    key_serializer="raw",
    value_serializer="raw",
    broker_session_timeout=10,
    broker_rebalance_timeout=10,
    autodiscover=False,
)

feed = app.topic("upi.transactions", key_serializer="raw", value_serializer="raw")


class Tally:
    """Events seen, and (wall, CPU, events) when the first batch arrived."""

    def __init__(self) -> None:
        self.seen = 0
        self.first: tuple[float, float, int] | None = None
        self.written = False

    def batch(self, size: int) -> None:
        self.seen += size
        if self.first is None:
            self.first = (time.monotonic(), time.process_time(), self.seen)
        elif COUNT and self.seen >= COUNT and not self.written:
            self.write()

    def write(self) -> None:
        assert self.first is not None
        wall0, cpu0, start = self.first
        wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
        events = max(self.seen - start, 1)
        result = {
            "events": self.seen,
            "counted_events": events,
            "seconds": round(wall, 3),
            "events_per_s": round(events / max(wall, 1e-9)),
            "cpu_us_per_event": round(cpu * 1e6 / events, 1),
            "cpu_share_of_one_core": round(cpu / max(wall, 1e-9), 2),
        }
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        tmp = RESULT.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(result))
        tmp.rename(RESULT)
        self.written = True


tally = Tally()


@app.agent(feed)
async def bare(stream: faust.StreamT[bytes]) -> None:
    # take_events is on faust.Stream, not on StreamT (faust 0.15.3)
    async for events in cast(Stream[bytes], stream).take_events(5000, within=0.01):
        tally.batch(len(events))


if __name__ == "__main__":
    app.main()
