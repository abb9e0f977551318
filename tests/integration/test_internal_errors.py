"""INTERNAL_ERROR end to end: a live worker whose validate, decide and pair stages
fail on marked transactions (the test-only hook ``agents.faults``,
``REWARDS_TEST_FAIL``) parks each with the right source, goes on, and keeps
the accounting: every feed message has its decision or its dead letter.

A pair-stage failure loses the payment's circular check, not its decision: that
message has its decision *and* an INTERNAL_ERROR dead letter (docs/contracts.md).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import orjson
import pytest

from rewards.rulebook import load_rules
from rewards.simulate import simulate
from schemas.transaction import Transaction
from tests.chaos.harness import read_topic
from tests.integration.conftest import values, wait_for_outputs
from tests.unit.helpers import raw
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 600
FAULTS = "validate:FAILV,decide:FAILD,pair:FAILP"


def _marked() -> dict[str, bytes]:
    p2p = {"payee_kind": "PERSON", "mcc": ...}
    return {
        "validate": raw(txn_id="FAILV1", payer_vpa="fault.one@okaxis"),
        "decide": raw(txn_id="FAILD1", payer_vpa="fault.two@okaxis"),
        # A P2P SUCCESS payment between two users of its own: the pair stage sees it.
        "pair": raw(
            txn_id="FAILP1", payer_vpa="fault.three@okaxis", payee_vpa="fault.four@ybl", **p2p
        ),
    }


def _key(value: bytes | None) -> bytes:
    try:
        return str(orjson.loads(value or b"")["payer_vpa"]).lower().encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return b"bad"


def test_each_stage_parks_its_failure_with_its_source_and_the_worker_goes_on(broker, workers):
    messages: list[bytes | None] = [
        m.value for m in generate(COUNT, 31, bad_share=0.02, fraud_share=0.0)
    ]
    marked = _marked()
    value: bytes | None
    for position, value in zip((100, 250, 400), marked.values(), strict=True):
        messages.insert(position, value)
    prod = producer([broker.bootstrap])
    for value in messages:
        prod.send(topics.TRANSACTIONS, key=_key(value), value=value)
    prod.flush()
    prod.close()

    worker = workers.start(env={"REWARDS_TEST_FAIL": FAULTS})
    # Decisions + dead letters: one per message, plus the decided pair-stage failure.
    out = wait_for_outputs(broker.bootstrap, len(messages) + 1, timeout=240)
    feed = read_topic(broker.bootstrap, topics.TRANSACTIONS, expect=len(messages))
    at = {value: (p, o) for p, o, _, value in feed}

    letters = [orjson.loads(v) for v in values(out, topics.DEAD_LETTERS)]
    decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
    internal = {str(orjson.loads(marked_value)["txn_id"]): None for marked_value in marked.values()}
    by_position = {(int(d["partition"]), int(d["offset"])): d for d in letters}
    for stage, value in marked.items():
        partition, offset = at[value]
        letter = by_position.get((partition, offset))
        assert letter is not None, f"{stage}: no dead letter at the feed message"
        assert (letter["reason"], letter["topic"]) == ("INTERNAL_ERROR", topics.TRANSACTIONS)
        assert "InjectedFault" in letter["detail"] and "field" not in letter
        internal[str(orjson.loads(value)["txn_id"])] = letter
    v, d, p = internal["FAILV1"], internal["FAILD1"], internal["FAILP1"]
    assert v is not None and d is not None and p is not None
    assert v["raw"].encode() == marked["validate"]  # the feed bytes
    assert Transaction.model_validate_json(d["raw"]) == Transaction.model_validate_json(
        marked["decide"]
    )  # the validated transaction as our code rendered it
    pair_raw = orjson.loads(p["raw"])  # the pair payment
    pair_at = at[marked["pair"]]
    assert (pair_raw["txn_id"], pair_raw["source"]) == (
        "FAILP1",
        f"{topics.TRANSACTIONS}:{pair_at[0]}:{pair_at[1]}",
    )

    decided = Counter(str(x["txn_id"]) for x in decisions)
    assert decided["FAILV1"] == 0 and decided["FAILD1"] == 0 and decided["FAILP1"] == 1
    # The accounting: messages in = decisions + dead letters, the pair failure aside.
    assert len(decisions) + len(letters) == len(messages) + 1
    assert sum(1 for x in letters if x["reason"] == "INTERNAL_ERROR") == 3

    # Everything else decided exactly as the core decides the feed without the two
    # events that never reached a decision.
    book = load_rules(DEFAULT_RULES)
    sim = simulate([m for m in messages if m not in (marked["validate"], marked["decide"])], book)
    want: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for e in sim.effects:
        if e.decision is not None:
            want[e.decision.user_vpa].append(
                (e.decision.txn_id, e.decision.outcome.value, e.decision.coins)
            )
    got: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for x in decisions:
        got[str(x["user_vpa"])].append((str(x["txn_id"]), str(x["outcome"]), int(x["coins"])))
    assert got == want
    assert len(letters) - 3 == len(sim.dead_letters)

    assert worker.proc.poll() is None and worker.healthy(), "the worker did not go on"
    metrics = worker.metrics()
    assert 'rewards_dead_letters_total{reason="INTERNAL_ERROR"} 3.0' in metrics
