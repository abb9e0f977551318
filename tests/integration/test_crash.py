"""kill -9 mid-stream: no grant lost, none doubled once the wallet dedupes by grant_id.

The feed is keyed by payer here, so each user's events are decided in produce
order and the oracle's expectation is exact. (The full crash storm, rebalance
and broker-stall runs belong to the fault-injection suite.)
"""

from __future__ import annotations

import signal
import time
from collections import Counter, defaultdict
from typing import Any

import orjson
import pytest

from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tests.oracle import expected, expected_balances
from tools.feedgen import generate
from tools.topic_io import TopicTail, producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 20_000


def test_kill_9_mid_stream_loses_and_doubles_nothing(broker, workers):
    messages = list(generate(COUNT, seed=23))
    valid = [
        t
        for t in (decode(m.value, Source("t", 0, 0)) for m in messages)
        if isinstance(t, Transaction)
    ]
    prod = producer([broker.bootstrap])
    for m, t in zip(messages, (decode(m.value, Source("t", 0, 0)) for m in messages), strict=True):
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else m.key
        prod.send(topics.TRANSACTIONS, key=key or b"bad", value=m.value)
    prod.flush()

    first = workers.start()
    tail = TopicTail([broker.bootstrap], [topics.DECISIONS])
    deadline = time.monotonic() + 120
    while tail.count(topics.DECISIONS) < COUNT // 4:  # kill it a quarter of the way in
        assert time.monotonic() < deadline, "worker made no progress"
        tail.poll()
    tail.close()
    first.stop(signal.SIGKILL)

    workers.start(data_dir=first.data_dir)  # local rocksdict state + changelog recovery
    want = expected(valid, load_rules(DEFAULT_RULES).spec)
    want_decided = Counter((e.txn_id, e.outcome) for e in want)
    out = wait_for_outputs(broker.bootstrap, COUNT, decisions=want_decided)

    grants: dict[str, dict[str, Any]] = {}
    repeats = 0
    for value in values(out, topics.COIN_GRANTS):
        g = orjson.loads(value)
        if g["grant_id"] in grants:
            repeats += 1
            assert grants[g["grant_id"]] == g, "a re-emitted grant must be an exact copy"
        grants[g["grant_id"]] = g
    want_grants = {g.grant_id: g for e in want for g in e.grants}
    assert set(grants) == set(want_grants)
    for grant_id, g in grants.items():
        assert g["coins"] == want_grants[grant_id].coins, grant_id
    balances: dict[str, int] = defaultdict(int)
    for g in grants.values():
        balances[str(g["user_vpa"])] += int(g["coins"]) * (1 if g["kind"] == "GRANT" else -1)
    assert {u: b for u, b in balances.items() if b} == {
        u: b for u, b in expected_balances(want).items() if b
    }
    # Every input is accounted for at least once; repeats are exact copies.
    decided = {
        (d["txn_id"], d["outcome"]) for d in map(orjson.loads, values(out, topics.DECISIONS))
    }
    assert {(e.txn_id, e.outcome) for e in want} <= decided
    print(f"grant records re-emitted after kill -9 and deduplicated: {repeats}")
