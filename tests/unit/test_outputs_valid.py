"""Every output the core builds passes its contract's validation.

The core builds decisions, grants and alerts with ``model_construct`` (no
validation: they are made from validated inputs, and validating them again
was a tenth of the core's time). This is the check that makes that safe: a
realistic feed with farmers, refunds, caps and bad messages through the core,
and every output read back through its schema, equal to what was sent.
"""

from __future__ import annotations

from pydantic import BaseModel

from rewards.rulebook import load_rules
from rewards.simulate import simulate
from schemas.decision import Decision
from schemas.fraud_alert import FraudAlert
from schemas.grant import CoinGrant
from tools.feedgen import generate
from topologies.settings import DEFAULT_RULES


def _round_trip(model: BaseModel) -> None:
    raw = model.model_dump_json()
    back = type(model).model_validate_json(raw)
    assert back.model_dump_json() == raw
    assert back == model


def test_every_output_of_a_feed_validates() -> None:
    book = load_rules(DEFAULT_RULES)
    feed = generate(6000, seed=11, users=150, fraud_share=0.05)
    sim = simulate((m.value for m in feed), book)
    seen: dict[type, int] = {Decision: 0, CoinGrant: 0, FraudAlert: 0}
    for effects in sim.effects:
        for model in (effects.decision, *effects.grants, *effects.alerts):
            if model is None:
                continue
            _round_trip(model)
            seen[type(model)] += 1
    # The feed exercises all three kinds, clawbacks and split rules among them.
    assert seen[Decision] > 5000
    assert seen[CoinGrant] > 1000
    assert seen[FraudAlert] > 0
    kinds = {g.kind for e in sim.effects for g in e.grants}
    assert len(kinds) == 2
    assert any(len(g.rules) > 1 for e in sim.effects for g in e.grants)
