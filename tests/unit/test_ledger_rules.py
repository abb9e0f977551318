"""The core's decisions: rules, caps at IST day and month edges, duplicates, refunds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewards.ledger import CAP_HORIZON_DAYS, Effects, MemoryState, process, replay
from rewards.rulebook import RuleBook
from rewards.state import Payment, UserState, decode_user, encode_user
from schemas.decision import Reason
from schemas.transaction import Transaction
from tests.oracle import expected
from tests.unit.helpers import book, decided, refund, txn


def outcomes(effects: Iterable[Effects]) -> list[tuple[str, str, int]]:
    return [(d.txn_id, d.outcome.value, d.coins) for d in map(decided, effects)]


# --- rules -----------------------------------------------------------------


def test_formula_is_integer_floor_plus_flat_capped_per_rule():
    b = book({"id": "r", "reward": {"bps": 150, "flat_coins": 2, "max_coins": 10}})
    # 12,345 paise * 150 // 1,000,000 = 1 (floor), + 2 flat = 3
    assert b.earn(txn(amount_paise=12_345)) == [("r", 3)]
    # 1,000,000 paise * 150 // 1e6 = 150 + 2 = 152, capped at 10
    assert b.earn(txn(amount_paise=1_000_000)) == [("r", 10)]


@pytest.mark.parametrize(
    ("amount", "matches"),
    [(999, False), (1000, True), (5000, True), (5001, False)],
)
def test_amount_bounds_are_inclusive(amount, matches):
    b = book(
        {
            "id": "r",
            "match": {"min_amount_paise": 1000, "max_amount_paise": 5000},
            "reward": {"flat_coins": 1},
        }
    )
    assert bool(b.earn(txn(amount_paise=amount))) is matches


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ("2026-10-31T23:59:59+05:30", False),
        ("2026-11-01T00:00:00+05:30", True),  # active_from is inclusive
        ("2026-10-31T18:30:00Z", True),  # the same instant in UTC
        ("2026-11-30T23:59:59+05:30", True),
        ("2026-12-01T00:00:00+05:30", False),  # active_until is exclusive
    ],
)
def test_active_window_on_event_time(when, matches):
    b = book(
        {
            "id": "r",
            "match": {
                "active_from": "2026-11-01T00:00:00+05:30",
                "active_until": "2026-12-01T00:00:00+05:30",
            },
            "reward": {"flat_coins": 1},
        }
    )
    assert bool(b.earn(txn(event_time=when))) is matches


def test_payee_kind_and_mcc_filters():
    b = book(
        {
            "id": "grocery",
            "match": {"payee_kind": "MERCHANT", "mcc_in": ["5411"]},
            "reward": {"flat_coins": 5},
        }
    )
    assert b.earn(txn(mcc="5411")) == [("grocery", 5)]
    assert b.earn(txn(mcc="5812")) == []
    assert b.earn(txn(payee_kind="PERSON", mcc=..., payee_vpa="friend@oksbi")) == []


def test_grant_sums_matching_rules_and_names_them():
    b = book({"id": "a", "reward": {"bps": 100}}, {"id": "b", "reward": {"flat_coins": 3}})
    (e,) = replay([txn(amount_paise=500_000)], b)[0]
    assert decided(e).outcome == "GRANTED" and decided(e).coins == 53
    (g,) = e.grants
    assert (g.grant_id, g.kind, g.coins, g.txn_id, g.cause_txn_id, g.reason) == (
        "T1:grant",
        "GRANT",
        53,
        "T1",
        "T1",
        "PAYMENT",
    )
    assert [(r.rule_id, r.coins) for r in g.rules] == [("a", 50), ("b", 3)]
    assert g.rules_version == "test-1" and g.user_vpa == "ravi.kumar@okaxis"


def test_no_rule_and_zero_coins_earn_nothing_and_emit_no_grant():
    b = book(
        {"id": "big", "match": {"min_amount_paise": 10_000_000}, "reward": {"flat_coins": 1}},
        {"id": "tiny", "reward": {"bps": 1}},
    )
    effects, _ = replay([txn(txn_id="A", amount_paise=100)], b)
    assert outcomes(effects) == [("A", "NO_REWARD", 0)]
    assert decided(effects[0]).reasons == ["zero_coins"] and effects[0].grants == ()
    effects, _ = replay(
        [txn(txn_id="B")],
        book({"id": "p2p", "match": {"payee_kind": "PERSON"}, "reward": {"flat_coins": 1}}),
    )
    assert decided(effects[0]).reasons == ["no_matching_rule"]


# --- caps in IST -------------------------------------------------------------


def test_daily_cap_clamps_and_resets_at_ist_midnight_not_utc():
    b = book({"id": "flat", "reward": {"flat_coins": 40}}, daily=100)
    effects, _ = replay(
        [
            txn(txn_id="A", event_time="2026-11-25T23:00:00+05:30"),
            txn(txn_id="B", event_time="2026-11-25T23:30:00+05:30"),
            txn(txn_id="C", event_time="2026-11-25T23:59:59+05:30"),  # only 20 left
            txn(txn_id="D", event_time="2026-11-25T18:29:59Z"),  # still Nov 25 in IST: 0 left
            txn(txn_id="E", event_time="2026-11-25T18:30:00Z"),  # Nov 26 00:00 IST: fresh room
        ],
        b,
    )
    assert outcomes(effects) == [
        ("A", "GRANTED", 40),
        ("B", "GRANTED", 40),
        ("C", "GRANTED", 20),
        ("D", "NO_REWARD", 0),
        ("E", "GRANTED", 40),
    ]
    assert decided(effects[2]).reasons == ["rule_matched", "daily_cap"]
    assert decided(effects[3]).reasons == ["rule_matched", "daily_cap"]


def test_monthly_cap_across_the_ist_month_boundary():
    b = book({"id": "flat", "reward": {"flat_coins": 60}}, daily=1000, monthly=100)
    effects, _ = replay(
        [
            txn(txn_id="A", event_time="2026-11-29T12:00:00+05:30"),
            txn(txn_id="B", event_time="2026-11-30T12:00:00+05:30"),  # 40 left this month
            txn(txn_id="C", event_time="2026-11-30T18:29:59Z"),  # Nov 30 23:59:59 IST: none left
            txn(txn_id="D", event_time="2026-11-30T18:30:00Z"),  # Dec 1 IST: new month
        ],
        b,
    )
    assert outcomes(effects) == [
        ("A", "GRANTED", 60),
        ("B", "GRANTED", 40),
        ("C", "NO_REWARD", 0),
        ("D", "GRANTED", 60),
    ]
    assert "monthly_cap" in decided(effects[1]).reasons


def test_out_of_order_events_use_their_own_day_room():
    b = book({"id": "flat", "reward": {"flat_coins": 80}}, daily=100)
    effects, _ = replay(
        [
            txn(txn_id="A", event_time="2026-11-26T09:00:00+05:30"),
            txn(txn_id="B", event_time="2026-11-25T09:00:00+05:30"),  # late: yesterday's room
            txn(txn_id="C", event_time="2026-11-26T10:00:00+05:30"),
        ],
        b,
    )
    assert outcomes(effects) == [("A", "GRANTED", 80), ("B", "GRANTED", 80), ("C", "GRANTED", 20)]


def test_clawbacks_do_not_give_cap_room_back():
    b = book({"id": "flat", "reward": {"flat_coins": 100}}, daily=100)
    effects, _ = replay([txn(txn_id="A"), refund("R", "A", 100_000), txn(txn_id="B")], b)
    assert outcomes(effects) == [
        ("A", "GRANTED", 100),
        ("R", "CLAWED_BACK", 100),
        ("B", "NO_REWARD", 0),
    ]


def test_payment_beyond_the_cap_horizon_earns_nothing():
    b = book({"id": "flat", "reward": {"flat_coins": 1}})
    old = f"2026-{9:02d}-01T10:00:00+05:30"
    assert CAP_HORIZON_DAYS < 85  # Sep 1 is 85 days before Nov 25
    effects, _ = replay([txn(txn_id="NEW"), txn(txn_id="OLD", event_time=old)], b)
    assert outcomes(effects) == [("NEW", "GRANTED", 1), ("OLD", "NO_REWARD", 0)]
    assert decided(effects[1]).reasons == ["beyond_state_horizon"]


# --- duplicates and statuses -------------------------------------------------------


def test_resent_success_is_a_duplicate_and_pending_failed_are_ignored():
    b = book()
    effects, _ = replay(
        [
            txn(txn_id="A", status="PENDING"),
            txn(txn_id="A", status="FAILED"),
            txn(txn_id="A"),  # PENDING/FAILED did not block the SUCCESS
            txn(txn_id="A"),  # the bank resends it
            txn(txn_id="A", status="PENDING"),  # late PENDING after SUCCESS: still ignored
            refund("R", "A", 50_000),
            refund("R", "A", 50_000),  # resent refund: no second clawback
        ],
        b,
    )
    assert outcomes(effects) == [
        ("A", "IGNORED", 0),
        ("A", "IGNORED", 0),
        ("A", "GRANTED", 10),
        ("A", "DUPLICATE", 0),
        ("A", "IGNORED", 0),
        ("R", "CLAWED_BACK", 5),
        ("R", "DUPLICATE", 0),
    ]
    assert [e.grants[0].grant_id for e in effects if e.grants] == ["A:grant", "R:clawback"]


def test_duplicates_are_per_user():
    effects, _ = replay([txn(txn_id="A"), txn(txn_id="A", payer_vpa="other@oksbi")], book())
    assert outcomes(effects) == [("A", "GRANTED", 10), ("A", "GRANTED", 10)]


def test_vpas_compare_case_insensitively():
    effects, _ = replay([txn(txn_id="A"), txn(txn_id="A", payer_vpa="RAVI.KUMAR@OKAXIS")], book())
    assert outcomes(effects) == [("A", "GRANTED", 10), ("A", "DUPLICATE", 0)]


# --- refunds -----------------------------------------------------------------------------


def test_partial_refunds_claw_back_by_floor_of_the_refunded_share():
    b = book({"id": "flat", "reward": {"flat_coins": 10}})
    effects, _ = replay(
        [
            txn(txn_id="P", amount_paise=30_000),
            refund("R1", "P", 10_000),  # 1/3 of 10 = 3.33 -> 3
            refund("R2", "P", 10_000),  # 2/3 -> 6, minus 3 already = 3
            refund("R3", "P", 20_000),  # over-refund: capped at the amount -> 10, minus 6 = 4
            refund("R4", "P", 5_000),  # nothing left
        ],
        b,
    )
    assert outcomes(effects) == [
        ("P", "GRANTED", 10),
        ("R1", "CLAWED_BACK", 3),
        ("R2", "CLAWED_BACK", 3),
        ("R3", "CLAWED_BACK", 4),
        ("R4", "NO_REWARD", 0),
    ]
    g = effects[1].grants[0]
    assert (g.grant_id, g.kind, g.txn_id, g.cause_txn_id, g.reason, g.rules) == (
        "R1:clawback",
        "CLAWBACK",
        "P",
        "R1",
        "REFUND",
        [],
    )
    assert decided(effects[4]).reasons == ["nothing_left_to_claw_back"]


def test_refund_of_unknown_or_unrewarded_payment_claws_nothing():
    b = book({"id": "big", "match": {"min_amount_paise": 1_000_000}, "reward": {"flat_coins": 5}})
    effects, _ = replay(
        [
            txn(txn_id="SMALL"),
            refund("R1", "SMALL", 100_000),
            refund("R2", "NOPE", 100),
            refund("R3", "SMALL", 1, payer_vpa="someone.else@ybl"),
        ],
        b,
    )
    assert outcomes(effects) == [
        ("SMALL", "NO_REWARD", 0),
        ("R1", "NO_REWARD", 0),
        ("R2", "NO_REWARD", 0),
        ("R3", "NO_REWARD", 0),
    ]
    assert [decided(e).reasons for e in effects[1:]] == [
        ["unrewarded_payment"],
        ["unknown_payment"],
        ["unknown_payment"],
    ]
    assert all(e.grants == () for e in effects)


# --- replays and resends ---------------------------------------------------------------


def test_a_replayed_source_emits_nothing_new_and_a_resend_is_a_duplicate():
    b = book()
    user = UserState()
    first = process(txn(txn_id="P", amount_paise=200_000), b, user, "upi.transactions:0:7")
    assert (decided(first).outcome, decided(first).coins, first.replay) == ("GRANTED", 20, False)
    before = encode_user(user)
    # The same feed message again (a crash after its outputs were acknowledged
    # and its record written): nothing is emitted, nothing changes.
    again = process(txn(txn_id="P", amount_paise=200_000), b, user, "upi.transactions:0:7")
    assert again.replay and again.decision is None and again.grants == () and again.alerts == ()
    assert encode_user(user) == before
    # The bank resending it (another offset, or no source at all) is a duplicate.
    resent = process(txn(txn_id="P", amount_paise=200_000), b, user, "upi.transactions:0:9")
    assert (decided(resent).outcome, decided(resent).reasons, resent.grants) == (
        "DUPLICATE",
        ["already_processed"],
        (),
    )
    assert decided(process(txn(txn_id="P"), b, user)).outcome == "DUPLICATE"
    # The state survives its codec: the refund still finds what was granted.
    restored = decode_user(encode_user(user))
    later = process(refund("R", "P", 100_000), b, restored, "upi.transactions:0:10")
    assert (decided(later).outcome, decided(later).coins) == ("CLAWED_BACK", 10)


def test_same_input_same_bytes():
    events = [txn(txn_id=f"T{i}", amount_paise=10_000 * i + 1) for i in range(1, 20)]
    events += [refund("R", "T3", 5_000)]
    run1, state1 = replay(events, book(daily=50))
    run2, state2 = replay(events, book(daily=50))
    assert [decided(e).model_dump_json() for e in run1] == [
        decided(e).model_dump_json() for e in run2
    ]
    assert [g.model_dump_json() for e in run1 for g in e.grants] == [
        g.model_dump_json() for e in run2 for g in e.grants
    ]
    assert state1 == state2


# --- the state horizon, each case against the oracle too ---------------------------------


def _days_before(newest: str, days: int) -> str:
    return (datetime.fromisoformat(newest) - timedelta(days=days)).isoformat()


def agree(
    events: list[Transaction], b: RuleBook
) -> tuple[list[tuple[str, str, int, list[Reason]]], list[Effects], MemoryState]:
    """The core's (txn_id, outcome, coins, reasons), asserted equal to the oracle's."""
    effects, state = replay(events, b)
    got = [(d.txn_id, d.outcome.value, d.coins, d.reasons) for d in map(decided, effects)]
    want = [(w.txn_id, w.outcome, w.coins, list(w.reasons)) for w in expected(events, b.spec)]
    assert got == want
    return got, effects, state


NEWEST = "2026-11-25T10:00:00+05:30"


def test_exactly_62_days_behind_still_earns_63_does_not():
    b = book({"id": "flat", "reward": {"flat_coins": 1}})
    got, _, _ = agree(
        [
            txn(txn_id="NEW", event_time=NEWEST),
            txn(txn_id="D62", event_time=_days_before(NEWEST, 62)),
            txn(txn_id="D63", event_time=_days_before(NEWEST, 63)),
        ],
        b,
    )
    assert [(t, o, r) for t, o, _, r in got] == [
        ("NEW", "GRANTED", ["rule_matched"]),
        ("D62", "GRANTED", ["rule_matched"]),
        ("D63", "NO_REWARD", ["beyond_state_horizon"]),
    ]
    assert CAP_HORIZON_DAYS == 62


def test_the_horizon_is_on_ist_days_not_24_hour_spans():
    b = book({"id": "flat", "reward": {"flat_coins": 1}})
    # 23:59 IST 62 days before the newest day's 00:00 IST: still day -62, earns.
    got, _, _ = agree(
        [
            txn(txn_id="NEW", event_time="2026-11-25T00:00:00+05:30"),
            txn(txn_id="EDGE", event_time="2026-09-24T23:59:59+05:30"),
            txn(txn_id="OUT", event_time="2026-09-23T18:29:59Z"),  # Sep 23 23:59:59 IST
        ],
        b,
    )
    assert [o for _, o, _, _ in got] == ["GRANTED", "GRANTED", "NO_REWARD"]


def test_a_refund_of_an_expired_payment_claws_back_nothing():
    b = book({"id": "flat", "reward": {"flat_coins": 10}})
    paid = _days_before(NEWEST, 63)
    got, effects, _ = agree(
        [
            txn(txn_id="OLD", event_time=paid),
            refund("R0", "OLD", 50_000, event_time=_days_before(NEWEST, 62)),  # still known
            txn(txn_id="NEW", event_time=NEWEST),  # OLD falls behind the horizon
            refund("R1", "OLD", 50_000, event_time=NEWEST),
        ],
        b,
    )
    assert [(t, o, c, r) for t, o, c, r in got] == [
        ("OLD", "GRANTED", 10, ["rule_matched"]),
        ("R0", "CLAWED_BACK", 5, ["refund_clawback"]),
        ("NEW", "GRANTED", 10, ["rule_matched"]),
        ("R1", "NO_REWARD", 0, ["unknown_payment"]),
    ]
    assert effects[3].grants == ()


def test_a_refund_dated_beyond_the_horizon_is_kept_as_long_as_its_payment():
    """Found by the property test: a refund whose own day is beyond the horizon, of a
    payment still held, claws back; a resend of it after another event must stay a
    DUPLICATE (it was forgotten at once, and clawed again under the same grant id)."""
    b = book({"id": "flat", "reward": {"flat_coins": 10}})
    old = _days_before(NEWEST, 63)
    got, effects, state = agree(
        [
            txn(txn_id="P", event_time=NEWEST),
            txn(txn_id="Q", event_time=NEWEST),
            refund("R", "P", 50_000, event_time=old),
            txn(txn_id="S", event_time=NEWEST),  # R is no longer the last event
            refund("R", "Q", 50_000, event_time=old),
            refund("R", "P", 50_000, event_time=old),
        ],
        b,
    )
    assert [(t, o, c) for t, o, c, _ in got] == [
        ("P", "GRANTED", 10),
        ("Q", "GRANTED", 10),
        ("R", "CLAWED_BACK", 5),
        ("S", "GRANTED", 10),
        ("R", "DUPLICATE", 0),
        ("R", "DUPLICATE", 0),
    ]
    ids = [g.grant_id for e in effects for g in e.grants]
    assert len(ids) == len(set(ids))
    user = state[decided(effects[0]).user_vpa]
    p, q = cast(Payment, user.txns["P"]), cast(Payment, user.txns["Q"])
    assert (p.refunded, q.refunded) == (50_000, 0)
    assert decode_user(encode_user(user)) == user


def test_a_resend_of_an_expired_payment_is_beyond_the_horizon_not_a_duplicate():
    b = book({"id": "flat", "reward": {"flat_coins": 10}})
    old = txn(txn_id="OLD", event_time=_days_before(NEWEST, 63))
    got, effects, state = agree(
        [old, txn(txn_id="NEW", event_time=NEWEST), old, old],
        b,
    )
    assert [(t, o, r) for t, o, _, r in got] == [
        ("OLD", "GRANTED", ["rule_matched"]),
        ("NEW", "GRANTED", ["rule_matched"]),
        ("OLD", "NO_REWARD", ["beyond_state_horizon"]),
        # right after itself it left no record, yet it is still a duplicate (last event)
        ("OLD", "DUPLICATE", ["already_processed"]),
    ]
    assert [g.grant_id for e in effects for g in e.grants] == ["OLD:grant", "NEW:grant"]
    assert "OLD" not in state["ravi.kumar@okaxis"].txns


def test_only_non_duplicate_success_events_advance_the_newest_day():
    b = book({"id": "flat", "reward": {"flat_coins": 1}})
    far = _days_before(NEWEST, -100)  # 100 days ahead
    got, _, state = agree(
        [
            txn(txn_id="A", event_time=NEWEST),
            txn(txn_id="P", status="PENDING", event_time=far),
            txn(txn_id="F", status="FAILED", event_time=far),
            txn(txn_id="A", event_time=far),  # a duplicate: its time counts for nothing
            txn(txn_id="B", event_time=_days_before(NEWEST, 1)),  # so B still earns
            refund("R", "A", 1, event_time=far),  # a SUCCESS refund does advance it
            txn(txn_id="C", event_time=NEWEST),  # now 100 days behind
        ],
        b,
    )
    assert [o for _, o, _, _ in got] == [
        "GRANTED",
        "IGNORED",
        "IGNORED",
        "DUPLICATE",
        "GRANTED",
        "NO_REWARD",  # it moved the newest day first, so A (100 days behind) is gone
        "NO_REWARD",
    ]
    assert got[-1][3] == ["beyond_state_horizon"] and got[5][3] == ["unknown_payment"]
    assert state["ravi.kumar@okaxis"].newest_day == datetime.fromisoformat(far).date().toordinal()


def test_both_caps_binding_name_daily_then_monthly():
    b = book({"id": "flat", "reward": {"flat_coins": 50}}, daily=40, monthly=30)
    got, _, _ = agree([txn(txn_id="A"), txn(txn_id="B")], b)
    assert got == [
        ("A", "GRANTED", 30, ["rule_matched", "daily_cap", "monthly_cap"]),
        ("B", "NO_REWARD", 0, ["rule_matched", "daily_cap", "monthly_cap"]),
    ]


def test_status_duplicate_and_refund_reasons_against_the_oracle():
    b = book({"id": "flat", "reward": {"flat_coins": 10}})
    got, _, _ = agree(
        [
            txn(txn_id="A", status="PENDING"),
            refund("R", "A", 100, status="FAILED"),
            txn(txn_id="A"),
            txn(txn_id="A"),
            refund("R", "A", 50_000),
            refund("R", "A", 50_000),
        ],
        b,
    )
    assert [r for *_, r in got] == [
        ["status_not_success"],
        ["status_not_success"],
        ["rule_matched"],
        ["already_processed"],
        ["refund_clawback"],
        ["already_processed"],
    ]


# --- a crash replay repeats the first decision or emits nothing ----------------------------


@given(
    st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["P", "R"]), st.integers(1, 9)),
             min_size=1, max_size=25),
    st.integers(0, 24),
    st.booleans(),
)  # fmt: skip
def test_a_replayed_batch_repeats_its_decisions_byte_for_byte_or_emits_nothing(
    draws, cut, state_kept
):
    """The decide stage writes a user's record whole after a batch's outputs are
    acknowledged; a crash either loses that write (the batch is decided again
    against the record as it was) or keeps it (the marks skip the batch). Either
    way every repeated output is byte-identical to the first, or absent."""
    b = book({"id": "pct", "reward": {"bps": 100, "flat_coins": 1}}, daily=40)
    events = []
    for i, (n, kind, amount) in enumerate(draws):
        if kind == "P":
            events.append(txn(txn_id=f"T{n}", amount_paise=amount * 10_000))
        else:
            events.append(refund(f"R{i}", f"T{n}", amount * 5_000))
    cut = min(cut, len(events))
    user = UserState()
    first = [process(e, b, user, f"upi.transactions:0:{i}") for i, e in enumerate(events[:cut])]
    record = encode_user(user)  # the record written after the first part's batch
    batch = [
        process(e, b, user, f"upi.transactions:0:{cut + i}") for i, e in enumerate(events[cut:])
    ]
    after = encode_user(user)
    restored = decode_user(after if state_kept else record)
    again = [
        process(e, b, restored, f"upi.transactions:0:{cut + i}") for i, e in enumerate(events[cut:])
    ]

    def wire(effects: Iterable[Effects]) -> list[str]:
        out: list[str] = []
        for e in effects:
            out += [g.model_dump_json() for g in e.grants]
            out += [a.model_dump_json() for a in e.alerts]
            if e.decision is not None:
                out.append(e.decision.model_dump_json())
        return out

    if state_kept:
        assert all(e.replay for e in again) and wire(again) == []
    else:
        assert wire(again) == wire(batch)
    assert encode_user(restored) == after  # the same record either way
    assert all(not e.replay for e in first + batch)


def test_fraud_hold_reasons_against_the_oracle():
    b = book(
        {"id": "flat", "reward": {"flat_coins": 10}},
        fraud={
            "same_payee": {"max_payments": 2, "window_seconds": 3600},
            "velocity": {"max_payments": 4, "window_seconds": 600},
            "cooldown_seconds": 3600,
        },
    )
    at = [f"2026-11-25T10:0{i}:00+05:30" for i in range(6)]
    other = {"payee_vpa": "other.shop@ybl"}
    got, effects, _ = agree(
        [
            txn(txn_id="S0", event_time=at[0]),
            txn(txn_id="S1", event_time=at[1]),
            txn(txn_id="S2", event_time=at[2]),  # third to one payee in an hour: same_payee
            txn(txn_id="O3", event_time=at[3], **other),
            txn(txn_id="O4", event_time=at[4], **other),  # fifth in 10 min: velocity too
            txn(txn_id="L5", event_time="2026-11-25T12:00:00+05:30", **other),  # after both
        ],
        b,
    )
    assert [(t, o, sorted(r)) for t, o, _, r in got] == [
        ("S0", "GRANTED", ["rule_matched"]),
        ("S1", "GRANTED", ["rule_matched"]),
        ("S2", "FRAUD_HOLD", ["fraud_same_payee"]),
        ("O3", "FRAUD_HOLD", ["fraud_same_payee"]),
        ("O4", "FRAUD_HOLD", ["fraud_same_payee", "fraud_velocity"]),
        ("L5", "GRANTED", ["rule_matched"]),
    ]
    fraud = [(g.grant_id, g.cause_txn_id) for e in effects for g in e.grants if g.reason == "FRAUD"]
    assert fraud == [("S0:fraud-clawback", "S2"), ("S1:fraud-clawback", "S2")]
