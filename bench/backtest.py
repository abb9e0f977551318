"""The backtest's speed: ``upi-rewards simulate``'s work, the pure core alone.

    .venv/bin/python -m bench.backtest [--count 100000] [--repeat 3] [--baseline]

Generates a feed (``tools.feedgen``, the bench's feed), then times
``rewards.backtest.run`` over it with the launch rules: decode and validate
every message, decide it through the core, circular pairs, the summary. No
broker, no file reading. Prints events/s (wall) and CPU µs/event (this
process's own CPU time: the box is shared, so that is the figure to compare);
the best of ``--repeat`` runs. The target is ≥ 20,000 ev/s (≤ 50 µs/event).
With ``--baseline``, the rules and a baseline (the launch rules again, under
another version), as ``simulate --baseline`` runs them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rewards.backtest import run, run_many
from rewards.rulebook import load_rules, parse_rules
from tools.feedgen import generate

RULES = Path(__file__).resolve().parent.parent / "topologies" / "rules" / "launch.yaml"
TARGET_EV_S = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--baseline", action="store_true")
    args = parser.parse_args()
    messages = [m.value for m in generate(args.count, seed=args.seed, fraud_share=0.01)]
    book = load_rules(RULES)
    other = parse_rules({**book.spec.model_dump(mode="json", exclude_none=True), "version": "b"})
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(args.repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        if args.baseline:
            runs = run_many(messages, [book, other])
            assert runs[0].summary == runs[1].summary
        else:
            run(messages, book)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    n = len(messages) * (2 if args.baseline else 1)
    us = best_cpu * 1e6 / n
    print(
        f"backtest core: {n:,} events ({'rules + baseline' if args.baseline else 'one rules file'})"
        f", best of {args.repeat}: {n / best_wall:,.0f} ev/s wall, {us:.1f} µs/event CPU "
        f"({1e6 / us:,.0f} ev/s of CPU; target {TARGET_EV_S:,} ev/s: "
        f"{'met' if 1e6 / us >= TARGET_EV_S else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
