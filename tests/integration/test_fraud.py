"""Fraud windows on a real broker with a real worker: farmers caught, honest users not.

A generated feed with farmers of every pattern (velocity bursts, the same
payee again and again, two users paying each other back and forth) goes in,
keyed by payer so each user's events keep feed order. The alerts topic must
flag every farmer and no honest user, and every user's coins granted minus
coins clawed back must equal the independent oracle (tests/oracle.py), which
shares no code with the worker's core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import orjson
import pytest

from rewards.rulebook import load_rules
from rewards.simulate import simulate
from rewards.validate import Source, decode
from schemas.fraud_alert import FraudAlert
from schemas.grant import CoinGrant
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tests.oracle import expected, expected_balances
from tools.feedgen import generate
from tools.topic_io import TopicTail, producer, read_to_end
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 8000


def test_every_farmer_flagged_no_honest_user_and_coins_equal_the_oracle(broker, workers):
    book = load_rules(DEFAULT_RULES)
    truth: dict[str, str] = {}
    messages = list(generate(COUNT, seed=23, bad_share=0.005, fraud_share=0.04, truth=truth))
    assert Counter(truth.values()).keys() == {"velocity", "same_payee", "circular"}
    valid = [
        t
        for t in (decode(m.value, Source("t", 0, 0)) for m in messages)
        if isinstance(t, Transaction)
    ]
    oracle = expected(valid, book.spec)
    want_alerts = {(u, r) for d in oracle for u, r, _ in d.alerts}
    prod = producer([broker.bootstrap])
    for txn, m in zip(valid, [m for m in messages if m.valid], strict=True):
        prod.send(topics.TRANSACTIONS, key=txn.payer_vpa.encode(), value=m.value)
    for m in messages:
        if not m.valid:
            prod.send(topics.TRANSACTIONS, key=b"bad", value=m.value)
    prod.flush()

    worker = workers.start()
    out = wait_for_outputs(broker.bootstrap, COUNT)
    # Circular flags travel through a second stage: wait until they have all landed.
    # wait_for_outputs waited until every stage committed its inputs (so their
    # outputs are on the broker); read the alerts to the end of the topic.
    tail = TopicTail([broker.bootstrap], topics.OUTPUTS)
    try:
        read_to_end(tail, tail.poll)
    finally:
        tail.close()
    assert tail.count(topics.FRAUD_ALERTS) >= len(want_alerts)
    assert out.count(topics.DECISIONS) == len(valid)

    alerts = [FraudAlert.model_validate_json(v) for v in values(tail, topics.FRAUD_ALERTS)]
    flagged = {a.user_vpa for a in alerts}
    honest_flagged = flagged - set(truth)
    missed = set(truth) - flagged
    assert not missed, f"farmers not flagged: {len(missed)} of {len(truth)}"
    assert not honest_flagged, f"honest users flagged: {len(honest_flagged)}"
    assert {(a.user_vpa, a.rule.value) for a in alerts} == want_alerts
    # Deterministic ids: one alert per id, keyed by its user.
    assert len({a.alert_id for a in alerts}) == len(alerts)
    for key, value in tail.records[topics.FRAUD_ALERTS]:
        assert value is not None
        assert key == orjson.loads(value)["user_vpa"].encode()

    grants: dict[str, CoinGrant] = {}
    for value in values(tail, topics.COIN_GRANTS):
        grant = CoinGrant.model_validate_json(value)
        assert grants.setdefault(grant.grant_id, grant) == grant  # a repeat is identical
    balances: dict[str, int] = {}
    for g in grants.values():
        balances[g.user_vpa] = balances.get(g.user_vpa, 0) + (
            g.coins if g.kind == "GRANT" else -g.coins
        )
    fraud_clawed = [g for g in grants.values() if g.reason == "FRAUD"]
    assert fraud_clawed, "farmers earned coins before the flag; some must be clawed back"
    want = {u: c for u, c in expected_balances(oracle).items() if c}
    assert {u: c for u, c in balances.items() if c} == want
    assert simulate([m.value for m in messages], book).balances() == expected_balances(oracle)
    for user in truth:
        assert balances.get(user, 0) == want.get(user, 0)

    holds = Counter(orjson.loads(v)["outcome"] for v in values(tail, topics.DECISIONS))
    assert holds["FRAUD_HOLD"] > 0
    text = worker.metrics()
    velocity = sum(a.rule == "velocity" for a in alerts)
    assert f'rewards_fraud_alerts_total{{rule="velocity"}} {float(velocity)}' in text
    assert "@" not in "".join(line for line in text.splitlines() if not line.startswith("#"))


def test_feed_command_writes_the_farming_ground_truth(broker, tmp_path):
    truth_file = tmp_path / "truth.json"
    cmd = [sys.executable, "-m", "tools.cli", "feed", "--count", "3000"]
    cmd += ["--fraud-share", "0.1", "--truth", str(truth_file), "--bootstrap", broker.bootstrap]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    truth = json.loads(truth_file.read_text())
    assert f"({len(truth)} users) written to" in done.stdout
    assert set(truth.values()) == {"velocity", "same_payee", "circular"}
    want: dict[str, str] = {}
    list(generate(3000, 42, fraud_share=0.1, truth=want))
    assert truth == want
    tail = TopicTail([broker.bootstrap], [topics.TRANSACTIONS])
    try:
        deadline = time.monotonic() + 30
        while tail.count(topics.TRANSACTIONS) < 3000 and time.monotonic() < deadline:
            tail.poll()
    finally:
        tail.close()
    assert tail.count(topics.TRANSACTIONS) == 3000
