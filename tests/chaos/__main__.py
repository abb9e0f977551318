"""``python -m tests.chaos`` (``make chaos``): the fault-injection suite at full size.

Runs every scenario (or those named) against a fresh embedded broker and real
worker processes and prints a table of figures; exits 1 if any scenario found
a lost or doubled coin (or any other broken guarantee). Full sizes: 100,000
events and 10 kill -9s in the storm, 100,000 events over 3 workers for the
rebalance, a 20 s broker SIGSTOP, 10,000 hostile messages. ``--events`` etc.
shrink it for a quick look.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable

from brokers.launcher import engine_from_env
from tests.chaos import scenarios
from tests.chaos.harness import Report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument(
        "names",
        nargs="*",
        help="storm storm-fresh storm-packs rebalance stall graceful hostile, and storm-eos "
        "(exactly_once; default all, storm-eos only with REWARDS_TEST_BROKER=kafka)",
    )
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--stall", type=float, default=20.0, help="seconds of broker SIGSTOP")
    p.add_argument("--hostile", type=int, default=10_000)
    args = p.parse_args(argv)
    runs: dict[str, Callable[[], Report]] = {
        "storm": lambda: scenarios.crash_storm(args.events, args.kills),
        "storm-fresh": lambda: scenarios.crash_storm(args.events, args.kills, 17, fresh_every=2),
        "rebalance": lambda: scenarios.rebalance(args.events),
        "storm-packs": lambda: scenarios.crash_storm_packs(max(args.events, 20_000), args.kills),
        "stall": lambda: scenarios.broker_stall(args.events, args.stall),
        "graceful": lambda: scenarios.graceful_stop(args.events),
        "hostile": lambda: scenarios.hostile_stream(args.hostile, max(args.hostile // 2, 200)),
        "storm-eos": lambda: scenarios.crash_storm(args.events, args.kills, 19, exactly_once=True),
    }
    kafka = engine_from_env() == "kafka"  # transactions: Apache Kafka only
    names = args.names or [n for n in runs if n != "storm-eos" or kafka]
    unknown = set(names) - set(runs)
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    results: list[tuple[str, str, float, Report | None]] = []
    for name in names:
        started = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            report = runs[name]()
            results.append((name, "PASS", time.monotonic() - started, report))
            print(report.text(), flush=True)
        except AssertionError as exc:
            results.append((name, f"FAIL: {exc}".splitlines()[0], time.monotonic() - started, None))
            traceback.print_exc()
        except Exception as exc:
            results.append((name, f"ERROR: {exc!r}"[:200], time.monotonic() - started, None))
            traceback.print_exc()
    print()
    print(f"{'scenario':<10} {'result':<6} {'seconds':>8}  figures")
    for name, result, seconds, done in results:
        figures = ""
        if done is not None:
            keep = ("events", "worker_kills", "wallet_duplicates_deduped", "decisions")
            figures = "; ".join(f"{k}={done.rows[k]}" for k in keep if k in done.rows)
        print(f"{name:<10} {result.split(':')[0]:<6} {seconds:>8.1f}  {figures or result}")
    return 0 if all(r == "PASS" for _, r, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
