"""Score the fraud detectors on generated feeds, and size the state they leave.

    .venv/bin/python bench/fraud_detection.py [--count 100000] [--share 0.02] [--seeds 1,2,3]

Runs the pure pipeline (``rewards.simulate``: the same core the worker runs)
over feeds with farmers whose patterns are known (``tools.feedgen`` ground
truth) and prints a markdown table: farmers per pattern, how many were
flagged (by any rule, and by their own pattern), honest users flagged, coins
clawed back; then the state's size per 100,000 users (keys and bytes of
everything the ``user-state`` table would hold), which must not grow with the
length of the stream.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from rewards.rulebook import load_rules
from rewards.simulate import simulate
from rewards.state import encode_user, user_key
from schemas.grant import GrantReason
from tools.feedgen import generate

RULES = Path(__file__).resolve().parent.parent / "topologies" / "rules" / "launch.yaml"


def score(count: int, share: float, seed: int) -> dict[str, object]:
    book = load_rules(RULES)
    truth: dict[str, str] = {}
    messages = [m.value for m in generate(count, seed, fraud_share=share, truth=truth)]
    started = time.perf_counter()
    sim = simulate(messages, book)
    seconds = time.perf_counter() - started
    by_user: dict[str, set[str]] = {}
    for alert in sim.alerts:
        by_user.setdefault(alert.user_vpa, set()).add(alert.rule.value)
    users = {e.decision.user_vpa for e in sim.effects if e.decision is not None}
    row: dict[str, object] = {"seed": seed, "events": count, "users": len(users)}
    for pattern in ("velocity", "same_payee", "circular"):
        farmers = [u for u, p in truth.items() if p == pattern]
        own = sum(1 for u in farmers if pattern in by_user.get(u, set()))
        anyrule = sum(1 for u in farmers if u in by_user)
        row[pattern] = f"{own}/{len(farmers)} ({anyrule})"
    row["honest flagged"] = len(set(by_user) - set(truth))
    row["alerts"] = len(sim.alerts)
    row["coins clawed (fraud)"] = sum(
        g.coins for e in sim.effects for g in e.grants if g.reason is GrantReason.FRAUD
    )
    row["held"] = sum(
        1 for e in sim.effects if e.decision is not None and e.decision.outcome == "FRAUD_HOLD"
    )
    row["late"] = sum(e.late for e in sim.effects)
    state_bytes = sum(len(user_key(k)) + len(encode_user(v)) for k, v in sim.state.items())
    row["state MB / 100k users"] = round(state_bytes / len(users) * 100_000 / 1e6, 1)
    row["core ev/s"] = int(count / seconds)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--share", type=float, default=0.02)
    parser.add_argument("--seeds", default="1,2,3")
    args = parser.parse_args()
    rows = [score(args.count, args.share, int(s)) for s in args.seeds.split(",")]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    totals = Counter[str]()
    for row in rows:
        totals["honest flagged"] += int(str(row["honest flagged"]))
    print(f"\nhonest users flagged in all runs: {totals['honest flagged']}")


if __name__ == "__main__":
    main()
