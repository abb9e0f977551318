"""Replay marks: a feed message decided once is recognised when it comes again.

Each user's record keeps, per input path (``topic:partition``), the highest
offset decided for that user; offsets of one path arrive in order.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rewards.ledger import apply_flag, process
from rewards.state import UserState, decode_user, encode_user, parse_source
from schemas.flag import FraudFlag, Violation
from schemas.fraud_alert import FraudRule
from tests.unit.helpers import book, decided, txn


def test_parse_source_keeps_topic_dots_and_partition():
    assert parse_source("upi.transactions:3:1042") == ("upi.transactions:3", 1042)
    assert parse_source("rewards.txns~lo:0:5") == ("rewards.txns~lo:0", 5)


def test_same_source_twice_the_second_is_a_replay_and_emits_nothing():
    b, user = book(), UserState()
    first = process(txn(txn_id="A"), b, user, "upi.transactions:0:5")
    assert not first.replay and decided(first).outcome == "GRANTED"
    assert user.marks == {"upi.transactions:0": 5}
    again = process(txn(txn_id="A"), b, user, "upi.transactions:0:5")
    assert again.replay and (again.decision, again.grants, again.alerts) == (None, (), ())


def test_a_lower_offset_on_the_same_path_is_a_replay_another_path_is_decided():
    b, user = book(), UserState()
    process(txn(txn_id="A"), b, user, "upi.transactions:0:5")
    lower = process(txn(txn_id="B"), b, user, "upi.transactions:0:4")
    assert lower.replay and lower.decision is None and "B" not in user.txns
    other = process(txn(txn_id="B"), b, user, "upi.transactions:1:0")
    assert not other.replay and decided(other).outcome == "GRANTED"
    assert user.marks == {"upi.transactions:0": 5, "upi.transactions:1": 0}
    higher = process(txn(txn_id="C"), b, user, "upi.transactions:0:6")
    assert decided(higher).outcome == "GRANTED" and user.marks["upi.transactions:0"] == 6


def test_ignored_events_are_marked_too_and_no_source_means_no_marks():
    b, user = book(), UserState()
    process(txn(txn_id="A", status="FAILED"), b, user, "t:2:8")
    assert user.marks == {"t:2": 8}
    assert process(txn(txn_id="A", status="FAILED"), b, user, "t:2:8").replay
    fresh = UserState()
    for _ in range(2):
        assert decided(process(txn(txn_id="A", status="FAILED"), b, fresh)).outcome == "IGNORED"
    assert fresh.marks == {}


def test_a_replayed_flag_claws_back_nothing_twice():
    rb = book(fraud={"circular": {"window_seconds": 86400}})
    user = UserState()
    process(txn(txn_id="A", payee_vpa="friend@oksbi", payee_kind="PERSON", mcc=...), rb, user)
    flag = FraudFlag(
        user_vpa="ravi.kumar@okaxis",
        violations=(
            Violation(
                rule=FraudRule.CIRCULAR,
                trigger_txn_id="A",
                t_ms=1_764_045_000_000,
                window_ms=86_400_000,
                txn_ids=("A",),
            ),
        ),
        source="pairs~lo:3:17",
        ingested_ns=0,
    )
    first = apply_flag(flag, rb, user)
    assert not first.replay and [a.rule for a in first.alerts] == ["circular"]
    assert user.marks == {"pairs~lo:3": 17}
    again = apply_flag(flag, rb, user)
    assert again.replay and (again.grants, again.alerts) == ((), ())


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 1000)), max_size=50))
def test_replay_means_some_offset_at_or_above_was_decided(decided):
    b, user = book(), UserState()
    for partition, offset in sorted(decided, key=lambda d: d[1]):
        process(txn(txn_id=f"T{partition}x{offset}"), b, user, f"t:{partition}:{offset}")
    user = decode_user(encode_user(user))  # the marks survive the codec
    for partition in range(4):
        for offset in (0, 500, 1000):
            expect = any(p == partition and o >= offset for p, o in decided)
            effects = process(txn(txn_id="NEW"), b, user, f"t:{partition}:{offset}")
            assert effects.replay == expect
            user.txns.pop("NEW", None)
            user.last_txn = ""
