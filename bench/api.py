"""Latency of the per-user API while the pipeline runs: local vs forwarded users.

``python -m bench.api [--engine tansu|kafka] [--seconds 30] [--rate 200] [--feed-rate 1000]``:
a fresh broker, two workers in one group with an API token; a warm-up feed so
users exist; then two phases of ``--seconds`` each with the feed paced at
``--feed-rate`` ev/s: first the feed alone, then the feed plus ``--rate``
API requests/s (open loop, half for users whose partition worker A owns,
half for users worker B owns, all sent to worker A). Prints p50/p99 per
route and the pipeline's mean ingest->decision latency (the workers'
``rewards_event_latency_seconds`` sum/count) in each phase. The box is
shared: treat the figures as indicative.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from agents.partitioning import partition_for
from brokers.launcher import ENGINES, engine_from_env, free_port, make_broker
from tests.integration.conftest import PARTITIONS, Worker, WorkerFactory, wait_for_outputs
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.admin import ensure_topics

TOKEN = "bench-token-" + "x" * 24
LAG = re.compile(r'^rewards_consumer_lag_messages\{partition="(\d+)",topic="([^"]+)"\}', re.M)


def _latency_sum_count(workers: list[Worker]) -> tuple[float, float]:
    total, count = 0.0, 0.0
    for w in workers:
        text = w.metrics()
        for name, value in re.findall(
            r"^(rewards_event_latency_seconds_(?:sum|count)) (\S+)$", text, re.M
        ):
            if name.endswith("sum"):
                total += float(value)
            else:
                count += float(value)
    return total, count


def _cpu_s(worker: Worker) -> float:
    """User + system CPU seconds of the worker process so far (/proc)."""
    fields = Path(f"/proc/{worker.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _partitions_of(worker: Worker, topic: str) -> set[int]:
    return {int(p) for p, t in LAG.findall(worker.metrics()) if t == topic}


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(
    port: int, users: list[tuple[str, str]], rate: float, seconds: float
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"local": [], "forwarded": [], "errors": []}
    statuses: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{port}"
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(route: str, vpa: str) -> None:
            started = loop.time()
            async with session.get(f"{base}/v1/users/{quote(vpa)}/rewards") as r:
                await r.read()
                ok = r.status == 200
            out[route if ok else "errors"].append((loop.time() - started) * 1000)
            if not ok:
                statuses[f"{route} {r.status}"] += 1

        tasks = []
        start = loop.time()
        n = int(rate * seconds)
        for i in range(n):
            due = start + i / rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            route, vpa = users[i % len(users)]
            tasks.append(asyncio.create_task(one(route, vpa)))
        await asyncio.gather(*tasks)
    if statuses:
        print(f"bench.api: answers other than 200: {dict(statuses)}", flush=True)
    return out


def run(engine: str, seconds: float, rate: float, feed_rate: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    tokens = tmp / "tokens"
    tokens.write_text(TOKEN + "\n")
    with make_broker(engine, port=free_port(), log=tmp / "broker.log") as broker:
        ensure_topics(
            [broker.bootstrap],
            {topics.TRANSACTIONS: PARTITIONS, **{t: PARTITIONS for t in topics.OUTPUTS}},
        )
        factory = WorkerFactory(broker, tmp)
        env = {"REWARDS_API_TOKENS_FILE": str(tokens), "REWARDS_API_RATE_LIMIT": "100000"}
        try:
            a = factory.start(env=env)
            b = factory.start(env=env)
            by_payer = topics.Internal("upi-rewards").by_payer
            deadline = time.monotonic() + 120
            while not (_partitions_of(a, by_payer) and _partitions_of(b, by_payer)):
                assert time.monotonic() < deadline, "the workers did not share the partitions"
                time.sleep(0.5)
            warm = list(generate(5000, seed=11))
            prod = producer([broker.bootstrap])
            for m in warm:
                prod.send(topics.TRANSACTIONS, key=m.key, value=m.value)
            prod.flush()
            wait_for_outputs(broker.bootstrap, len(warm), timeout=300)
            mine = _partitions_of(a, by_payer)
            vpas = sorted(
                {orjson.loads(m.value or b"{}")["payer_vpa"].lower() for m in warm if m.valid}
            )
            local = [v for v in vpas if partition_for(v.encode(), PARTITIONS) in mine]
            remote = [v for v in vpas if partition_for(v.encode(), PARTITIONS) not in mine]
            users = [
                pair
                for pairs in zip(
                    [("local", v) for v in local],
                    [("forwarded", v) for v in remote],
                    strict=False,
                )
                for pair in pairs
            ]
            phases: dict[str, Any] = {}
            for phase, with_api in (("feed only", False), ("feed + api", True)):
                before = _latency_sum_count([a, b])
                cpu_before = [_cpu_s(a), _cpu_s(b)]
                # The feed in its own process: in this one it would share the GIL
                # with the API client and arrive in bursts.
                feed = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "tools.cli",
                        "feed",
                        "--count",
                        str(int(feed_rate * seconds)),
                        "--seed",
                        str(100 + len(phases)),
                        "--rate",
                        str(feed_rate),
                        "--bad-share",
                        "0",
                        "--bootstrap",
                        broker.bootstrap,
                    ],
                    stdout=subprocess.DEVNULL,
                )
                result = asyncio.run(_load(a.web_port, users, rate, seconds)) if with_api else {}
                if feed.wait(timeout=seconds * 4 + 60) != 0:
                    raise RuntimeError(f"the feed exited {feed.returncode}")
                time.sleep(2)
                after = _latency_sum_count([a, b])
                cpu = [_cpu_s(a) - cpu_before[0], _cpu_s(b) - cpu_before[1]]
                events = after[1] - before[1]
                phases[phase] = {
                    "pipeline_events": events,
                    "cpu_s_worker_a": cpu[0],
                    "cpu_s_worker_b": cpu[1],
                    "pipeline_mean_latency_ms": (after[0] - before[0]) / events * 1000
                    if events
                    else float("nan"),
                    **{
                        f"{route}_{name}": fn(values)
                        for route, values in result.items()
                        if route != "errors"
                        for name, fn in (
                            ("n", len),
                            ("p50_ms", lambda v: _pct(v, 0.5)),
                            ("p99_ms", lambda v: _pct(v, 0.99)),
                            ("mean_ms", lambda v: statistics.fmean(v) if v else float("nan")),
                        )
                    },
                    **({"errors": len(result["errors"])} if result else {}),
                }
            return phases
        finally:
            factory.stop_all()
            for log in sorted(tmp.glob("*.log")):  # a re-executed worker skews every figure
                for line in log.read_text(errors="replace").splitlines():
                    if "re-executing the worker" in line or "StreamStalled" in line:
                        print(f"bench.api: {log.name}: {line[:300]}", flush=True)
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--engine", choices=ENGINES, default=engine_from_env())
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0, help="API requests/s")
    parser.add_argument("--feed-rate", type=float, default=1000.0, help="feed events/s")
    args = parser.parse_args()
    phases = run(args.engine, args.seconds, args.rate, args.feed_rate)
    for phase, figures in phases.items():
        print(f"{phase}:")
        for key, value in figures.items():
            print(f"  {key:28} {value:,.2f}" if isinstance(value, float) else f"  {key:28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
