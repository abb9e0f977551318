"""The state's one record per user: codec round trip, versions, size, bounded growth."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from rewards.circular import PairState
from rewards.fraud import FraudState
from rewards.ledger import (
    _make_alert,
    _make_decision,
    _make_grant,
    _make_rule_coins,
    process,
)
from rewards.rulebook import load_rules
from rewards.simulate import simulate
from rewards.state import (
    _ZDICT,
    _ZSTD_DICT,
    FORMAT_VERSION,
    PAIR_VERSION,
    Payment,
    Refund,
    StateFormatError,
    UserState,
    _rule_coins,
    _unpack,
    comparable,
    decode_pair,
    decode_user,
    encode_pair,
    encode_user,
    pair_key,
    user_key,
)
from schemas.decision import Decision, Outcome, Reason
from schemas.fraud_alert import FraudAlert, FraudRule
from schemas.grant import CoinGrant, GrantKind, GrantReason, RuleCoins
from tests.unit.helpers import txn
from tools.feedgen import generate
from topologies.settings import DEFAULT_RULES

ids = st.text("ABCXYZ0123456789._:-", min_size=1, max_size=30)
ints = st.integers(0, 2**40)
days = st.integers(700_000, 760_000)
spans = st.lists(st.lists(ints, min_size=2, max_size=2), max_size=3)
rule_coins = st.builds(
    RuleCoins,
    rule_id=st.sampled_from(["merchant-base", "p2p-welcome", "boost"]),
    coins=st.integers(1, 99),
)


@st.composite
def payments(draw: st.DrawFn) -> Payment:
    """A payment; usually its rules sum to what it was granted, as the ledger records them."""
    rules = draw(st.just(()) | st.lists(rule_coins, min_size=1, max_size=3))
    granted = sum(r.coins for r in rules) if draw(st.booleans()) else draw(ints)
    amount = draw(st.integers(1, 50_000_000))
    return Payment(draw(days), draw(ints), amount, granted, draw(ints), draw(ints), rules)


refunds = st.builds(Refund, days, ids, ints)
frauds = st.builds(
    FraudState,
    st.none() | ints,
    st.lists(st.tuples(ints, ids, ids).map(list), max_size=5).map(sorted),
    st.dictionaries(st.sampled_from(["velocity", "same_payee", "circular"]), spans, max_size=2),
    st.dictionaries(st.sampled_from(["velocity", "same_payee", "circular"]), spans, max_size=2),
)
users = st.builds(
    UserState,
    st.dictionaries(st.text(min_size=1, max_size=20).map(lambda s: f"{s}:3"), ints, max_size=3),
    st.dictionaries(days, ints, max_size=5),
    st.dictionaries(st.integers(24_000, 24_400), ints, max_size=3),
    days,
    frauds,
    st.dictionaries(ids, payments() | refunds, max_size=40),
    st.just("") | ids,
    st.booleans(),
)


def _normal(state: UserState) -> UserState:
    # An empty fraud state is stored as null: newest None and no holds mean nothing else is set.
    f = state.fraud
    if f.newest is None and not f.hold:
        state.fraud = FraudState()
    return state


@given(users)
def test_user_codec_round_trip(state):
    state = _normal(state)
    raw = encode_user(state)
    assert raw[0] == FORMAT_VERSION
    assert decode_user(raw) == state
    assert encode_user(decode_user(raw)) == raw


def test_seen_entries_referring_to_records_round_trip():
    state = UserState(newest_day=739_945)
    state.txns["T1"] = Payment(739_945, 1_000, 5_000, 1)
    state.txns["R1"] = Refund(739_945, "T1", 0)
    state.txns["T2"] = Payment(739_944, 900, 7_000, 0)
    state.fraud = FraudState(
        1_000, [[900, "T2", "b@x"], [950, "GONE", "c@x"], [1_000, "T1", "a@x"]]
    )
    assert decode_user(encode_user(state)) == state


@given(st.none() | ints, st.lists(st.tuples(ints, ids, st.booleans()), max_size=10))
def test_pair_codec_round_trip(newest, seen):
    pair = PairState(newest, sorted(seen))
    raw = encode_pair(pair)
    assert raw[0] == PAIR_VERSION and decode_pair(raw) == pair


def test_none_is_a_fresh_state():
    assert decode_user(None) == UserState()
    assert decode_pair(None) == PairState()


@pytest.mark.parametrize("raw", [b"\x04\x00[]", b"\x00\x00[]", b"{", b""])
def test_an_unknown_version_is_refused(raw):
    with pytest.raises(StateFormatError, match="format version"):
        decode_user(raw)
    with pytest.raises(StateFormatError, match="format version"):
        decode_pair(raw)


def test_a_pair_record_in_the_user_records_version_is_refused():
    with pytest.raises(StateFormatError, match="format version 2; this build reads version 1"):
        decode_pair(b"\x02\x00[null,[]]")


@pytest.mark.parametrize("version", [1, 2, FORMAT_VERSION])
@pytest.mark.parametrize(
    "body",
    [
        b"\x00[1,2]",
        b"\x01not deflate",
        b"\x02not zstd",
        b"\x07[]",  # no such flag
        b"\x00" + b'[{},0,[],null,"",0,["T1"],[]]',  # an id without its payment
        b"\x00" + b'[{},0,[],null,"",0,[],[],[],[],[],[],[],[],1,9]',  # too many fields
    ],
)
def test_a_corrupt_body_is_refused_clearly(version, body):
    with pytest.raises(StateFormatError, match="corrupt"):
        decode_user(bytes((version,)) + body)


def _forty_payments() -> UserState:
    state = UserState(newest_day=739_945, last_txn="T39")
    for i in range(40):
        state.txns[f"YBL{i:020d}"] = Payment(739_945, 1_000 * i, 10_000 + i, 0)
    return state


def test_a_long_body_is_zstd_compressed_with_the_preset_dictionary():
    state = _forty_payments()
    raw = encode_user(state)
    assert raw[:2] == bytes((FORMAT_VERSION, 2)) and decode_user(raw) == state
    body = zstandard.ZstdDecompressor(dict_data=_ZSTD_DICT).decompress(raw[2:])
    assert orjson.loads(body)[6] == list(state.txns) and len(raw) < len(body) / 2
    with pytest.raises(zstandard.ZstdError):  # the dictionary is part of the format
        zstandard.ZstdDecompressor().decompress(raw[2:])
    for broken in (raw[: len(raw) // 2], raw[:2] + b"\x28\xb5\x2f\xfd" + b"\xff" * 12):
        with pytest.raises(StateFormatError, match="corrupt"):
            decode_user(broken)


def test_a_version_2_record_deflated_with_the_preset_dictionary_still_decodes():
    state = _forty_payments()
    body = _unpack(encode_user(state), "user", (FORMAT_VERSION,))[1]  # version 2's body
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_ZDICT)
    raw = b"\x02\x01" + deflate.compress(body) + deflate.flush()
    assert decode_user(raw) == state
    assert encode_user(decode_user(raw))[0] == FORMAT_VERSION  # written back in version 3
    with pytest.raises(StateFormatError, match="corrupt"):
        decode_user(raw[: len(raw) // 2])
    with pytest.raises(StateFormatError, match="corrupt"):  # a version 3 flag in version 2
        decode_user(b"\x02\x02" + raw[2:])


def test_a_version_1_record_still_decodes():
    """As the version 1 encoder wrote it (before version 2): payments, a refund, fraud refs."""
    raw = (
        b'\x01\x00[{"upi.transactions:3":17},739945,[0,40,1,6],[24323,46],'
        b'[2000,[[0,"a@x"],[1,"b@x"]],{},{}],[["A",1,1000,60000,6,0,0],'
        b'["B",0,1000,200000,42,50000,8,[0,20,1]],["R",0,"B",8]],"R",0,["merchant-base","boost"]]'
    )
    state = decode_user(raw)
    two = [RuleCoins(rule_id="merchant-base", coins=20), RuleCoins(rule_id="boost", coins=22)]
    one = [RuleCoins(rule_id="merchant-base", coins=6)]
    assert state == UserState(
        {"upi.transactions:3": 17},
        {739_945: 40, 739_944: 6},
        {24_323: 46},
        739_945,
        FraudState(2_000, [[1_000, "A", "a@x"], [2_000, "B", "b@x"]], {}, {}),
        {
            "A": Payment(739_944, 1_000, 60_000, 6, rules=one),
            "B": Payment(739_945, 2_000, 200_000, 42, 50_000, 8, rules=two),
            "R": Refund(739_945, "B", 8),
        },
        "R",
        False,
    )
    again = encode_user(state)  # written back in this build's version
    assert again[0] == FORMAT_VERSION and decode_user(again) == state


def test_day_counters_a_fraud_clawback_lowered_come_back():
    """Counters are stored only where they are not the sum of the day's payments' coins."""
    state = UserState(newest_day=739_945, days={739_945: 3, 739_944: 0, 739_900: 7})
    state.txns["A"] = Payment(739_945, 1_000, 60_000, 6)
    state.txns["B"] = Payment(739_944, 2_000, 60_000, 5)
    state.txns["C"] = Payment(739_943, 3_000, 60_000, 4)  # its day's counter dropped
    raw = encode_user(state)
    assert decode_user(raw) == state
    plain = UserState(newest_day=739_945, days={739_945: 6})
    plain.txns["A"] = Payment(739_945, 1_000, 60_000, 6)
    assert b"[0,6]" not in encode_user(plain) and decode_user(encode_user(plain)) == plain


def test_a_record_without_forgot_and_rules_still_decodes():
    """A 7-field record (written before the payments kept their rules): no rules, forgot."""
    old = b'[{"t:0":5},739945,[0,12],[24323,12],null,[["T1",0,1000,120000,12,60000,6],'
    old += b'["R1",0,"T1",6],["T2",0,5,900,0,0,0]],"R1"]'
    state = decode_user(bytes((1, 0)) + old)
    assert state.txns == {
        "T1": Payment(739_945, 1_000, 120_000, 12, 60_000, 6),
        "R1": Refund(739_945, "T1", 6),
        "T2": Payment(739_945, 1_005, 900, 0),
    }
    assert state.forgot and state.days == {739_945: 12} and state.last_txn == "R1"
    assert decode_user(encode_user(state)) == state
    assert not decode_user(bytes((1, 0)) + b'[{},0,[],[],null,[],""]').forgot


def test_rules_are_stored_compactly_and_come_back_equal():
    one = [RuleCoins(rule_id="merchant-base", coins=6)]
    two = [RuleCoins(rule_id="merchant-base", coins=20), RuleCoins(rule_id="boost", coins=22)]
    state = UserState(newest_day=739_945)
    state.txns["A"] = Payment(739_945, 1_000, 60_000, 6, rules=one)
    state.txns["B"] = Payment(739_945, 2_000, 200_000, 42, rules=two)
    state.txns["C"] = Payment(739_945, 3_000, 500, 0)
    state.txns["D"] = Payment(739_945, 4_000, 10_000, 1, rules=[RuleCoins(rule_id="p2p", coins=1)])
    state.txns["E"] = Payment(739_945, 5_000, 70_000, 21, rules=two[:1])  # not every coin
    state.txns["F"] = Payment(739_945, 6_000, 80_000, 6, rules=one)
    raw = encode_user(state)
    body = raw[2:].decode()
    assert body.count("merchant-base") == 1
    # [age, dt, amount, granted, code, split], trailing zeros left out; codes 2.. name combos
    assert "[[0,1,60000,6,2],[0,1,200000,42,3,20],[0,1,500,0],[0,1,10000,1,4]," in body
    assert "[0,1,70000,21,1],[0,1,80000,6,2]]" in body  # E: code 1, its rules in rule_lists
    # rule ids, combos, refunds, rule_lists, days, days_gone (no counters: all gone), dt_scale
    assert ',["merchant-base","boost","p2p"],[[0],[0,1],[2]],[],[4,[0,20]],[],[0],1000]' in body
    assert decode_user(raw) == state


def test_keys():
    assert user_key("ravi.kumar@okaxis") == b"ravi.kumar@okaxis"
    assert pair_key("b@x", "a@x") == pair_key("a@x", "b@x") == "a@x\x1fb@x"


def test_comparable_drops_only_the_marks():
    book = load_rules(DEFAULT_RULES)
    feed = [m.value for m in generate(600, seed=4, users=20)]
    live = simulate(feed, book, topic="upi.transactions")
    other = simulate(feed, book, topic="replayed.elsewhere")
    assert live.state.keys() == other.state.keys()
    for vpa, state in live.state.items():
        assert state.marks and state.marks != other.state[vpa].marks
        assert comparable(state) == comparable(other.state[vpa])
        assert comparable(state).marks == {} and state.marks  # the original is untouched


def test_a_typical_user_with_40_events_is_about_a_kilobyte():
    """40 events over ~6 weeks: payments to a few merchants and friends, two refunds.

    The txn ids carry 9 random digits each (~400 of the bytes compressed);
    half the payments here name two rules. The goal is 1 KB: 952 bytes in
    format version 3 (983 in version 2, 1,297 in version 1).
    """
    book = load_rules(DEFAULT_RULES)
    rng = random.Random(7)
    payees = [
        f"{n}@{h}"
        for n, h in [
            ("dmart.thane", "ybl"),
            ("swiggy.food", "icici"),
            ("bigbasket.33", "paytm"),
            ("neha.singh534", "ybl"),
            ("shell.fuel.7", "ybl"),
        ]
    ]
    user = UserState()
    start = datetime(2026, 10, 20, 9, 0, tzinfo=UTC)
    paid: list[str] = []
    for i in range(40):
        when = start + timedelta(days=i * 1.05, minutes=rng.randrange(600))
        txn_id = f"YBL{when:%Y%m%d%H%M%S}{rng.randrange(10**9):09d}"
        if i in (12, 30):
            event = txn(
                txn_id=txn_id,
                kind="REFUND",
                original_txn_id=paid[-1],
                amount_paise=5_000,
                event_time=when.isoformat(),
            )
        else:
            payee = rng.choice(payees)
            person = payee.startswith("neha")
            event = txn(
                txn_id=txn_id,
                payee_vpa=payee,
                payee_kind="PERSON" if person else "MERCHANT",
                mcc=... if person else "5411",
                amount_paise=rng.randrange(5_000, 500_000),
                event_time=when.isoformat(),
            )
            paid.append(txn_id)
        process(event, book, user, f"upi.transactions:{i % 3}:{1_000_000 + i * 997}")
    raw = encode_user(user)
    print(f"typical user, 40 events: {len(raw)} bytes, {len(user.txns)} records")
    assert len(user.txns) == 40 and len(raw) <= 1_000
    assert decode_user(raw) == user
    granted = [p for p in user.txns.values() if isinstance(p, Payment) and p.granted]
    assert granted and all(sum(r.coins for r in p.rules) == p.granted for p in granted)
    assert {len(p.rules) for p in granted} == {1, 2}


def test_horizon_expiry_keeps_a_users_record_bounded_over_300_days():
    book = load_rules(DEFAULT_RULES)
    user = UserState()
    sizes = {}
    start = datetime(2026, 1, 1, 4, 0, tzinfo=UTC)
    for day in range(300):
        for i in range(3):
            when = start + timedelta(days=day, hours=i * 5)
            process(txn(txn_id=f"SBI{day:04d}{i}", event_time=when.isoformat()), book, user)
        sizes[day] = len(encode_user(user))
    assert len(user.txns) <= 3 * 63 and len(user.days) <= 63 and len(user.months) <= 4
    assert max(sizes[d] for d in range(100, 300)) <= sizes[80] * 1.15
    print(f"after 300 days of 3 payments a day: {sizes[299]} bytes (day 80: {sizes[80]})")


def test_trusted_constructors_build_what_model_construct_builds():
    t = txn()
    decision = {
        "txn_id": "T1",
        "user_vpa": "a@x",
        "outcome": Outcome.GRANTED,
        "coins": 3,
        "reasons": [Reason.RULE_MATCHED],
        "rules_version": "v",
        "event_time": t.event_time,
    }
    rules = {"rule_id": "r", "coins": 3}
    grant = {
        "grant_id": "T1:grant",
        "kind": GrantKind.GRANT,
        "user_vpa": "a@x",
        "coins": 3,
        "txn_id": "T1",
        "cause_txn_id": "T1",
        "reason": GrantReason.PAYMENT,
        "rules_version": "v",
        "rules": [],
        "event_time": t.event_time,
    }
    alert = {
        "alert_id": "T1:velocity:a@x",
        "user_vpa": "a@x",
        "rule": FraudRule.VELOCITY,
        "event_time": t.event_time,
        "window_seconds": 600,
        "txn_ids": ["T1"],
        "cooldown_until": t.event_time,
    }
    cases: list[tuple[Callable[[dict[str, Any]], BaseModel], type[BaseModel], dict[str, Any]]]
    cases = [
        (_make_decision, Decision, decision),
        (_make_rule_coins, RuleCoins, rules),
        (lambda v: _rule_coins(**v), RuleCoins, rules),
        (_make_grant, CoinGrant, grant),
        (_make_alert, FraudAlert, alert),
    ]
    for make, cls, values in cases:
        fast, slow = make(dict(values)), cls.model_construct(**values)
        assert list(fast.__dict__.items()) == list(slow.__dict__.items())
        assert fast.model_fields_set == slow.model_fields_set
        assert fast.__pydantic_extra__ == slow.__pydantic_extra__
        assert fast.__pydantic_private__ == slow.__pydantic_private__
        assert fast == slow and fast.model_dump_json() == slow.model_dump_json()
        assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)
        assert fast.model_copy(update={}) == slow
