"""Two workers in one consumer group share the partitions and still decide exactly."""

from __future__ import annotations

from collections import defaultdict

import orjson

from rewards.feedgen import generate
from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import wait_for_outputs
from tests.oracle import expected, expected_balances
from topologies import topics
from topologies.admin import producer
from topologies.settings import DEFAULT_RULES

COUNT = 8000


def test_two_workers_split_the_partitions_and_match_the_oracle(broker, workers):
    messages = list(generate(COUNT, seed=31))
    decoded = [decode(m.value, Source("t", 0, 0)) for m in messages]
    prod = producer([broker.bootstrap])
    for m, t in zip(messages, decoded, strict=True):
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else (m.key or b"bad")
        prod.send(topics.TRANSACTIONS, key=key, value=m.value)
    prod.flush()
    a = workers.start()
    b = workers.start()
    out = wait_for_outputs(broker.bootstrap, COUNT, timeout=240)

    valid = [t for t in decoded if isinstance(t, Transaction)]
    want = expected(valid, load_rules(DEFAULT_RULES).spec)
    grants = {}
    for _, value in out.records[topics.COIN_GRANTS]:
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
