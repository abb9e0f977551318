"""Two workers in one consumer group share the partitions and still decide exactly."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import orjson
import pytest

from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tests.oracle import expected, expected_balances
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 8000


def assigned(worker, topic: str) -> float:
    """Partitions of ``topic`` the worker holds, from its /metrics."""
    prefix = f'rewards_assigned_partitions{{topic="{topic}"}} '
    lines = [line for line in worker.metrics().splitlines() if line.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def test_two_workers_split_the_partitions_and_match_the_oracle(broker, workers):
    messages = list(generate(COUNT, seed=31))
    decoded = [decode(m.value, Source("t", 0, 0)) for m in messages]
    # Both in the groups before the feed: one worker alone decides 8,000 events in
    # a few seconds, before a second one started after the feed would have joined.
    a = workers.start()
    b = workers.start()
    by_payer = topics.Internal("upi-rewards").by_payer
    deadline = time.monotonic() + 120
    while not all(assigned(w, t) > 0 for w in (a, b) for t in (topics.TRANSACTIONS, by_payer)):
        assert time.monotonic() < deadline, "the two workers did not share the partitions"
        time.sleep(0.5)
    prod = producer([broker.bootstrap])
    for m, t in zip(messages, decoded, strict=True):
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else (m.key or b"bad")
        prod.send(topics.TRANSACTIONS, key=key, value=m.value)
    prod.flush()
    out = wait_for_outputs(broker.bootstrap, COUNT, timeout=240)

    valid = [t for t in decoded if isinstance(t, Transaction)]
    want = expected(valid, load_rules(DEFAULT_RULES).spec)
    grants: dict[str, Any] = {}
    for value in values(out, topics.COIN_GRANTS):
        g = orjson.loads(value)
        assert grants.setdefault(g["grant_id"], g) == g
    assert set(grants) == {g.grant_id for e in want for g in e.grants}
    balances: dict[str, int] = defaultdict(int)
    for g in grants.values():
        balances[g["user_vpa"]] += g["coins"] * (1 if g["kind"] == "GRANT" else -1)
    assert {u: v for u, v in balances.items() if v} == {
        u: v for u, v in expected_balances(want).items() if v
    }
    # Both workers did real work: each has decided events.
    for worker in (a, b):
        text = worker.metrics()
        decided = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("rewards_events_total{")
        )
        assert decided > 0, worker.log_text()[-2000:]
