"""The per-user API's answers: a pure function of the stored state and ``at``."""

from __future__ import annotations

from datetime import datetime

import pytest

from rewards.account import payment_answer, rewards_answer
from rewards.ledger import MemoryState, process
from rewards.rulebook import RuleBook
from rewards.state import decode_user, encode_user
from schemas.api import NotFoundReason, PaymentAnswer, PaymentNotFound, PaymentOutcome
from schemas.fraud_alert import FraudRule
from schemas.transaction import Transaction
from tests.unit.helpers import book, refund, txn

USER = "ravi.kumar@okaxis"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def run(events: list[Transaction], rules: RuleBook) -> MemoryState:
    state = MemoryState()
    for event in events:
        process(event, rules, state.user(event.payer_vpa))
    # The API reads what the store holds: go through the codec as a worker would.
    return MemoryState({k: decode_user(encode_user(v)) for k, v in state.items()})


def test_unknown_user_is_known_false_with_zeros_and_full_room() -> None:
    rules = book(daily=120, monthly=400)
    answer = rewards_answer(USER, None, rules, at("2026-11-30T12:00:00+05:30"))
    doc = answer.model_dump(mode="json")
    assert doc == {
        "user_vpa": USER,
        "known": False,
        "rules_version": "test-1",
        "at": "2026-11-30T12:00:00+05:30",
        "day": {"date": "2026-11-30", "coins_granted": 0, "cap": 120, "room": 120},
        "month": {"month": "2026-11", "coins_granted": 0, "cap": 400, "room": 400},
        "hold": {"active": False, "until": None, "rules": []},
        "newest_event_time": None,
    }


def test_day_and_month_edges_are_ist_calendar_days() -> None:
    rules = book(daily=120, monthly=400)
    # 23:59 IST on 30 Nov is 18:29 UTC; 00:00 IST on 1 Dec is 18:30 UTC on 30 Nov.
    events = [
        txn(txn_id="A", amount_paise=5_000_00, event_time="2026-11-30T23:59:00+05:30"),  # 50
        txn(txn_id="B", amount_paise=3_000_00, event_time="2026-11-30T18:30:00+00:00"),  # 30
    ]
    state = run(events, rules)[USER]
    late_nov = rewards_answer(USER, state, rules, at("2026-11-30T18:29:59+00:00"))
    assert late_nov.at.isoformat() == "2026-11-30T23:59:59+05:30"
    assert (late_nov.day.date, late_nov.day.coins_granted, late_nov.day.room) == (
        "2026-11-30",
        50,
        70,
    )
    assert (late_nov.month.month, late_nov.month.coins_granted, late_nov.month.room) == (
        "2026-11",
        50,
        350,
    )
    dec_1 = rewards_answer(USER, state, rules, at("2026-11-30T18:30:00Z"))
    assert (dec_1.day.date, dec_1.day.coins_granted, dec_1.day.room) == ("2026-12-01", 30, 90)
    assert (dec_1.month.month, dec_1.month.coins_granted) == ("2026-12", 30)
    assert dec_1.known is True
    assert dec_1.newest_event_time == at("2026-12-01T00:00:00+05:30")
    # A day with nothing granted in a month with something.
    dec_2 = rewards_answer(USER, state, rules, at("2026-12-02T09:00:00+05:30"))
    assert (dec_2.day.coins_granted, dec_2.day.room, dec_2.month.coins_granted) == (0, 120, 30)


def test_caps_absent_give_null_cap_and_room() -> None:
    rules = book()
    state = run([txn(txn_id="A", amount_paise=10_000_00)], rules)[USER]
    answer = rewards_answer(USER, state, rules, at("2026-11-25T12:00:00+05:30"))
    assert (answer.day.coins_granted, answer.day.cap, answer.day.room) == (100, None, None)
    assert (answer.month.coins_granted, answer.month.cap, answer.month.room) == (100, None, None)


def test_room_never_negative_and_refunds_give_no_room_back() -> None:
    rules = book(daily=120)
    events = [
        txn(txn_id="A", amount_paise=10_000_00),  # 100
        txn(txn_id="B", amount_paise=10_000_00, event_time="2026-11-25T10:05:00+05:30"),  # 20
        refund("R1", "A", 10_000_00, event_time="2026-11-25T10:10:00+05:30"),
    ]
    state = run(events, rules)[USER]
    answer = rewards_answer(USER, state, rules, at("2026-11-25T12:00:00+05:30"))
    assert (answer.day.coins_granted, answer.day.room) == (120, 0)
    assert answer.month.room is None


FRAUD = {
    "velocity": {"max_payments": 2, "window_seconds": 600},
    "cooldown_seconds": 3600,
}


def test_hold_covers_at_until_its_end() -> None:
    rules = book(fraud=FRAUD)
    events = [
        txn(txn_id=f"P{i}", amount_paise=1_000_00, event_time=f"2026-11-25T10:0{i}:00+05:30")
        for i in range(3)
    ]
    state = run(events, rules)[USER]
    # The third payment (10:02) breaks the window: hold [09:52, 11:02).
    inside = rewards_answer(USER, state, rules, at("2026-11-25T11:01:59+05:30"))
    assert inside.hold.active is True
    assert inside.hold.rules == [FraudRule.VELOCITY]
    assert inside.hold.until == at("2026-11-25T11:02:00+05:30")
    assert inside.model_dump(mode="json")["hold"]["until"] == "2026-11-25T11:02:00+05:30"
    after = rewards_answer(USER, state, rules, at("2026-11-25T11:02:00+05:30"))
    assert (after.hold.active, after.hold.until, after.hold.rules) == (False, None, [])
    before = rewards_answer(USER, state, rules, at("2026-11-25T09:51:59+05:30"))
    assert before.hold.active is False
    # Every payment of the window was clawed back, and gave its room back.
    assert inside.day.coins_granted == 0


def test_payment_with_a_refund_and_a_fraud_clawback() -> None:
    rules = book(fraud={"velocity": {"max_payments": 2, "window_seconds": 600}})
    events = [
        txn(txn_id="P0", amount_paise=4_000_00, event_time="2026-11-25T10:00:00+05:30"),  # 40
        refund("R0", "P0", 1_000_00, event_time="2026-11-25T10:00:30+05:30"),  # claws 10
        txn(txn_id="P1", amount_paise=1_000_00, event_time="2026-11-25T10:01:00+05:30"),
        txn(txn_id="P2", amount_paise=1_000_00, event_time="2026-11-25T10:02:00+05:30"),
        txn(txn_id="P3", amount_paise=1_000_00, event_time="2026-11-25T10:03:00+05:30"),
    ]
    state = run(events, rules)[USER]
    p0 = payment_answer(USER, state, rules, "P0")
    assert isinstance(p0, PaymentAnswer)
    assert p0.model_dump(mode="json") == {
        "txn_id": "P0",
        "user_vpa": USER,
        "outcome": "GRANTED",
        "amount_paise": 4_000_00,
        "refunded_paise": 1_000_00,
        "coins_granted": 40,
        "coins_clawed_back": 40,  # 10 for the refund, the other 30 for fraud
        "rules": [{"rule_id": "one-percent", "coins": 40}],
        "hold_rules": ["velocity"],
        "event_time": "2026-11-25T10:00:00+05:30",
    }
    p3 = payment_answer(USER, state, rules, "P3")  # decided under the hold
    assert isinstance(p3, PaymentAnswer)
    assert (p3.outcome, p3.coins_granted, p3.coins_clawed_back) == (
        PaymentOutcome.FRAUD_HOLD,
        0,
        0,
    )


def test_payment_that_earned_nothing_without_a_hold_is_no_reward() -> None:
    rules = book({"id": "merchants", "match": {"payee_kind": "MERCHANT"}, "reward": {"bps": 100}})
    state = run([txn(txn_id="F1", payee_kind="PERSON", mcc=...)], rules)[USER]
    answer = payment_answer(USER, state, rules, "F1")
    assert isinstance(answer, PaymentAnswer)
    assert (answer.outcome, answer.coins_granted, answer.hold_rules) == (
        PaymentOutcome.NO_REWARD,
        0,
        [],
    )
    assert answer.rules == []


def test_payment_names_the_coins_of_each_rule_as_its_grant_did() -> None:
    rules = book(
        {"id": "base", "match": {"payee_kind": "MERCHANT"}, "reward": {"bps": 100}},
        {"id": "grocery", "match": {"mcc_in": ["5411"]}, "reward": {"flat_coins": 5}},
        daily=30,
    )
    events = [
        txn(txn_id="G1", amount_paise=1_000_00, mcc="5411"),  # 10 + 5
        txn(txn_id="M1", amount_paise=1_000_00, mcc="5999", event_time="2026-11-25T10:01:00+05:30"),
        txn(txn_id="G2", amount_paise=1_000_00, mcc="5411", event_time="2026-11-25T10:02:00+05:30"),
    ]
    state = MemoryState()
    effects = [process(e, rules, state.user(USER)) for e in events]
    stored = decode_user(encode_user(state[USER]))
    want = {
        "G1": [{"rule_id": "base", "coins": 10}, {"rule_id": "grocery", "coins": 5}],
        "M1": [{"rule_id": "base", "coins": 10}],
        "G2": [{"rule_id": "base", "coins": 5}],  # the daily cap cut it to 5: base first
    }
    for effect, (txn_id, rule_coins) in zip(effects, want.items(), strict=True):
        answer = payment_answer(USER, stored, rules, txn_id)
        assert isinstance(answer, PaymentAnswer)
        assert answer.model_dump(mode="json")["rules"] == rule_coins
        (grant,) = effect.grants
        assert [r.model_dump() for r in grant.rules] == rule_coins


@pytest.mark.parametrize(
    ("txn_id", "reason"),
    [("NOPE", NotFoundReason.NEVER_SEEN), ("R1", NotFoundReason.NOT_A_PAYMENT)],
)
def test_payment_not_found_says_why_and_where_the_horizon_is(
    txn_id: str, reason: NotFoundReason
) -> None:
    rules = book()
    events = [txn(txn_id="A"), refund("R1", "A", 50_000)]
    state = run(events, rules)[USER]
    answer = payment_answer(USER, state, rules, txn_id)
    assert answer == PaymentNotFound(reason=reason, state_horizon_from="2026-09-24")


def test_payment_of_an_unknown_user() -> None:
    answer = payment_answer(USER, None, book(), "A")
    assert answer == PaymentNotFound(reason=NotFoundReason.UNKNOWN_USER, state_horizon_from=None)


def test_payment_beyond_the_horizon_is_gone_and_the_horizon_says_so() -> None:
    rules = book()
    events = [
        txn(txn_id="OLD", event_time="2026-09-01T10:00:00+05:30"),
        txn(txn_id="NEW", event_time="2026-11-25T10:00:00+05:30"),
    ]
    state = run(events, rules)[USER]
    answer = payment_answer(USER, state, rules, "OLD")
    assert isinstance(answer, PaymentNotFound)
    assert answer.reason is NotFoundReason.NOT_IN_STATE
    assert answer.state_horizon_from is not None and answer.state_horizon_from > "2026-09-01"
    # Once a record was dropped, an id never seen cannot be told from it either.
    assert payment_answer(USER, state, rules, "NOPE") == answer


def test_a_payment_never_kept_makes_a_missing_one_uncertain() -> None:
    rules = book()
    new = txn(txn_id="NEW", event_time="2026-11-25T10:00:00+05:30")
    state = run([new], rules)[USER]
    assert payment_answer(USER, state, rules, "OLD").reason is NotFoundReason.NEVER_SEEN  # type: ignore[union-attr]
    # A payment beyond the horizon on arrival is decided but not kept.
    state = run([new, txn(txn_id="OLD", event_time="2026-09-01T10:00:00+05:30")], rules)[USER]
    answer = payment_answer(USER, state, rules, "OLD")
    assert answer == PaymentNotFound(
        reason=NotFoundReason.NOT_IN_STATE, state_horizon_from="2026-09-24"
    )
    # Events that are not SUCCESS keep no record and forget nothing.
    state = run([new, txn(txn_id="F1", status="FAILED")], rules)[USER]
    assert payment_answer(USER, state, rules, "F1").reason is NotFoundReason.NEVER_SEEN  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", [23, 5])
def test_every_answer_of_a_simulated_feed_equals_the_oracle(seed: int) -> None:
    from rewards.rulebook import load_rules
    from rewards.simulate import simulate
    from rewards.validate import Source, decode
    from tests.oracle import Accounts
    from tools.feedgen import generate
    from topologies.settings import DEFAULT_RULES

    rules = load_rules(DEFAULT_RULES)
    messages = [m.value for m in generate(3000, seed=seed, bad_share=0.0, fraud_share=0.05)]
    sim = simulate(messages, rules)
    valid = [decode(m, Source("t", 0, 0)) for m in messages]
    oracle = Accounts([t for t in valid if isinstance(t, Transaction)], rules.spec)
    assert set(sim.state) == set(oracle.users)
    held = granted = 0
    reasons: set[NotFoundReason] = set()
    for vpa, state in sim.state.items():
        stored = decode_user(encode_user(state))
        times = [at("2026-11-20T23:59:59+05:30"), at("2026-12-01T00:00:00+05:30")]
        times += [
            p.event_time
            for p in [payment_answer(vpa, stored, rules, x) for x in stored.txns]
            if isinstance(p, PaymentAnswer)
        ][-3:]
        for when in times:
            got = rewards_answer(vpa, stored, rules, when).model_dump(mode="json")
            assert got == oracle.rewards(vpa, when), (vpa, when)
            held += got["hold"]["active"]
        for txn_id in [*stored.txns, "NOPE0001"]:
            answer = payment_answer(vpa, stored, rules, txn_id)
            want = oracle.payment(vpa, txn_id)
            if isinstance(answer, PaymentAnswer):
                assert answer.model_dump(mode="json") == want, (vpa, txn_id)
                granted += bool(answer.rules)
            else:
                assert want is None and answer.reason == oracle.not_found(vpa, txn_id)
                reasons.add(answer.reason)
    assert held > 0  # the feed's farmers are on hold at some of those times
    assert granted > 0 and NotFoundReason.NEVER_SEEN in reasons
