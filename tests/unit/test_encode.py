"""``schemas.encode.dump_json`` writes the bytes ``model_dump_json`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from rewards.circular import PairState, flags_for
from rewards.rulebook import load_rules
from rewards.simulate import decode_feed, simulate
from schemas.decision import Decision, Outcome, Reason
from schemas.encode import dump_json
from schemas.grant import CoinGrant, GrantKind, GrantReason, RuleCoins
from schemas.transaction import Transaction
from tools.feedgen import generate
from topologies.settings import DEFAULT_RULES


def _same(model: BaseModel) -> None:
    assert dump_json(model) == model.model_dump_json().encode()


def test_every_record_of_a_feed() -> None:
    """Transactions (as the edge forwards them), decisions, grants, alerts, flags."""
    book = load_rules(DEFAULT_RULES)
    values = [m.value for m in generate(6000, seed=11, users=150, fraud_share=0.05)]
    kinds: dict[str, int] = {}
    for item in decode_feed(values):
        if isinstance(item, Transaction):
            _same(item)
            kinds["Transaction"] = kinds.get("Transaction", 0) + 1
    for effects in simulate(values, book).effects:
        for model in (effects.decision, *effects.grants, *effects.alerts):
            if model is not None:
                _same(model)
                kinds[type(model).__name__] = kinds.get(type(model).__name__, 0) + 1
    pair = PairState()
    pair.observe(86_400_000, "T1", 1_000, "aa@xx", "bb@xx")
    hits = pair.observe(86_400_000, "T2", 2_000, "bb@xx", "aa@xx")
    for flag in flags_for(hits, 86_400_000, "pairs~{side}:0:7", 5):
        _same(flag)
        kinds["FraudFlag"] = kinds.get("FraudFlag", 0) + 1
    assert set(kinds) == {"Transaction", "Decision", "CoinGrant", "FraudAlert", "FraudFlag"}
    assert kinds["CoinGrant"] > 100 and kinds["FraudAlert"] > 5, kinds


_IST = timezone(timedelta(hours=5, minutes=30))
_WEST = timezone(-timedelta(hours=3, minutes=30))


@given(
    text=st.text(min_size=0, max_size=40),
    moment=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, _IST, _WEST]),
    ),
    coins=st.integers(min_value=0, max_value=10**12),
)
def test_any_string_time_and_count(text: str, moment: datetime, coins: int) -> None:
    """Rule ids and versions come from a rules file: any text, escapes included."""
    rules = [RuleCoins.model_construct(rule_id=text, coins=coins)]
    grant = CoinGrant.model_construct(
        grant_id="T1:grant",
        kind=GrantKind.GRANT,
        user_vpa="ab@x",
        coins=coins,
        txn_id="T1",
        cause_txn_id="T1",
        reason=GrantReason.PAYMENT,
        rules_version=text,
        rules=rules,
        event_time=moment,
    )
    _same(grant)
    decision = Decision.model_construct(
        txn_id="T1",
        user_vpa="ab@x",
        outcome=Outcome.GRANTED,
        coins=coins,
        reasons=[Reason.RULE_MATCHED, Reason.DAILY_CAP],
        rules_version=text,
        event_time=moment,
    )
    _same(decision)


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_what_orjson_refuses_falls_back(text: str) -> None:
    """A lone surrogate: orjson refuses it, pydantic's own rendering is used."""
    model = RuleCoins.model_construct(rule_id=text, coins=1)
    try:
        expected = model.model_dump_json().encode()
    except Exception as exc:  # pydantic refuses it too: so must we
        with pytest.raises(type(exc)):
            dump_json(model)
        return
    assert dump_json(model) == expected
