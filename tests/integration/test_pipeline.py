"""The whole pipeline on a real broker with a real worker process.

A generated feed (P2P and P2M, PENDING→SUCCESS, resends, refunds, bad records)
goes in; all three output topics are read back and checked against the
independent oracle (tests/oracle.py), event by event and grant by grant.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import orjson
import pytest

from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.dead_letter import DeadLetterReason
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tests.oracle import expected, expected_balances
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 6000


def processing_order(
    valid: list[Transaction], decisions: list[dict[str, object]]
) -> list[Transaction]:
    """Rebuild the order the worker decided each user's events in.

    The feed's keys are arbitrary, so one user's events may cross input
    partitions and be decided in another order than produced. The decisions
    topic is keyed by user, so its per-partition order is the worker's order;
    each decision is matched back to an input event of the same txn_id
    (IGNORED to a non-SUCCESS one, anything else to a SUCCESS one).
    """
    pool: dict[tuple[str, str, bool], list[Transaction]] = defaultdict(list)
    for txn in valid:
        pool[(txn.payer_vpa, txn.txn_id, txn.status == "SUCCESS")].append(txn)
    order = []
    for d in decisions:
        key = (str(d["user_vpa"]), str(d["txn_id"]), d["outcome"] != "IGNORED")
        assert pool[key], f"decision without a matching input event: {d}"
        order.append(pool[key].pop(0))
    assert not any(pool.values()), "input events without a decision"
    return order


def test_feed_in_grants_out_checked_against_the_oracle(broker, workers):
    messages = list(generate(COUNT, seed=11, bad_share=0.02))
    prod = producer([broker.bootstrap])
    for m in messages:
        prod.send(topics.TRANSACTIONS, key=m.key, value=m.value)
    prod.flush()
    worker = workers.start()
    out = wait_for_outputs(broker.bootstrap, COUNT)

    # Every message accounted for: in = decisions + dead letters, exactly.
    decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
    letters = [orjson.loads(v) for v in values(out, topics.DEAD_LETTERS)]
    grants = [orjson.loads(v) for v in values(out, topics.COIN_GRANTS)]
    n_bad = sum(not m.valid for m in messages)
    assert n_bad > 50
    assert len(letters) == n_bad
    assert len(decisions) == COUNT - n_bad
    assert len({(d["partition"], d["offset"]) for d in letters}) == n_bad
    assert {d["reason"] for d in letters} <= {r.value for r in DeadLetterReason}
    assert "INTERNAL_ERROR" not in {d["reason"] for d in letters}

    # Keys: every grant and decision is keyed by its user.
    for key, value in out.records[topics.COIN_GRANTS] + out.records[topics.DECISIONS]:
        assert value is not None
        assert key == orjson.loads(value)["user_vpa"].encode()

    # Every decision and grant equals the oracle's, in the worker's order.
    valid = [
        t
        for t in (decode(m.value, Source("t", 0, 0)) for m in messages)
        if isinstance(t, Transaction)
    ]
    book = load_rules(DEFAULT_RULES)
    want = expected(processing_order(valid, decisions), book.spec)
    by_user_got: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    by_user_want: dict[str, list[tuple[object, ...]]] = defaultdict(list)
    for d in decisions:
        by_user_got[d["user_vpa"]].append((d["txn_id"], d["outcome"], d["coins"]))
        assert d["rules_version"] == book.version
    for e in want:
        by_user_want[e.user_vpa].append((e.txn_id, e.outcome, e.coins))
    assert by_user_got == by_user_want

    want_grants = {g.grant_id: g for e in want for g in e.grants}
    assert len(grants) == len(want_grants), "a grant was lost or emitted twice"
    for g in grants:
        w = want_grants[g["grant_id"]]
        assert (g["kind"], g["user_vpa"], g["coins"], g["txn_id"], g["cause_txn_id"]) == (
            w.kind,
            w.user_vpa,
            w.coins,
            w.txn_id,
            w.cause_txn_id,
        )
        assert [(r["rule_id"], r["coins"]) for r in g.get("rules", [])] == list(w.rules)
        assert g["schema_version"] == 1 and g["rules_version"] == book.version
        assert g["reason"] == ("PAYMENT" if g["kind"] == "GRANT" else "REFUND")
    outcomes = Counter(d["outcome"] for d in decisions)
    assert all(
        outcomes[o] > 0 for o in ("GRANTED", "NO_REWARD", "IGNORED", "DUPLICATE", "CLAWED_BACK")
    ), outcomes
    balances: dict[str, int] = defaultdict(int)
    for g in grants:
        balances[g["user_vpa"]] += g["coins"] if g["kind"] == "GRANT" else -g["coins"]
    assert {u: b for u, b in balances.items() if b} == {
        u: b for u, b in expected_balances(want).items() if b
    }

    # The live metrics agree with the topics, and carry no personal data.
    text = worker.metrics()

    def metric(name: str, label: str) -> float:
        m = re.search(rf"^{name}\{{{label}\}} (\S+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    for outcome, n in outcomes.items():
        assert metric("rewards_events_total", f'outcome="{outcome}"') == n
    assert metric("rewards_coins_total", 'kind="GRANT"') == sum(
        g["coins"] for g in grants if g["kind"] == "GRANT"
    )
    assert (
        sum(metric("rewards_dead_letters_total", f'reason="{r.value}"') for r in DeadLetterReason)
        == n_bad
    )
    assert "rewards_event_latency_seconds_count " + f"{float(len(decisions))}" in text
    assert "@" not in "".join(line for line in text.splitlines() if not line.startswith("#"))
