"""Properties of the core over random event sequences, judged by the oracle.

The events span more than the 62-day state horizon (with days exactly 62 and
63 behind the newest), so payments beyond it, refunds and resends of expired
payments occur; rulebooks draw every match key (``max_amount_paise``,
``active_from``/``active_until`` included) and a ``fraud`` section (velocity,
same payee; circular flags need the pair stage: tests/unit/test_fraud.py and
``test_circular_reasons_agree_with_the_oracle`` below). Outcome, coins and
reasons are compared with the oracle event by event.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from hypothesis import given, note, settings
from hypothesis import strategies as st

from rewards.ledger import CAP_HORIZON_DAYS, replay
from rewards.rulebook import parse_rules
from rewards.simulate import simulate
from schemas.transaction import Transaction
from tests.oracle import expected
from tests.unit.helpers import decided, raw, txn

IST = ZoneInfo("Asia/Kolkata")
# Around an IST month end, so day and month caps both roll over.
START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)


def _at(days: int, minutes: int = 0) -> str:
    return (START + timedelta(days=days, minutes=minutes)).isoformat()


#: Day offsets of the events: a few days, a month on, and both sides of the
#: horizon (62 days behind the newest earns, 63 does not).
DAYS = [0, 0, 0, 1, 1, 2, 3, 31, 61, 62, 63, 64, 65, 66]
assert CAP_HORIZON_DAYS == 62


def _window_not_empty(m: dict[str, Any]) -> bool:
    return "active_from" not in m or "active_until" not in m or m["active_from"] < m["active_until"]


window = st.tuples(st.sampled_from(DAYS), st.sampled_from(DAYS)).map(sorted)
rule = st.fixed_dictionaries(
    {
        "reward": st.fixed_dictionaries(
            {"bps": st.integers(0, 500), "flat_coins": st.integers(0, 5)},
            optional={"max_coins": st.integers(0, 40)},
        )
    },
    optional={
        "match": st.fixed_dictionaries(
            {},
            optional={
                "payee_kind": st.sampled_from(["PERSON", "MERCHANT"]),
                "mcc_in": st.lists(
                    st.sampled_from(["5411", "5812", "4121"]), min_size=1, max_size=2
                ),
                "min_amount_paise": st.integers(0, 200_000),
                "max_amount_paise": st.integers(200_000, 600_000),
                "active_from": st.sampled_from(DAYS).map(lambda d: _at(d, 600)),
                "active_until": st.sampled_from(DAYS).map(lambda d: _at(d + 1, 60)),
            },
        ).filter(_window_not_empty)
    },
)
fraud = st.fixed_dictionaries(
    {},
    optional={
        "velocity": st.fixed_dictionaries(
            {"max_payments": st.integers(1, 4), "window_seconds": st.sampled_from([600, 86_400])}
        ),
        "same_payee": st.fixed_dictionaries(
            {"max_payments": st.integers(1, 3), "window_seconds": st.sampled_from([3600, 86_400])}
        ),
        "cooldown_seconds": st.sampled_from([0, 3600, 86_400]),
    },
)
rulebooks = st.builds(
    lambda rules, daily, monthly, fraud_rules: parse_rules(
        {
            "version": "prop",
            "timezone": "Asia/Kolkata",
            "limits": {
                k: v
                for k, v in (("daily_coins_per_user", daily), ("monthly_coins_per_user", monthly))
                if v is not None
            },
            "rules": [{"id": f"r{i}", **r} for i, r in enumerate(rules)],
            **({"fraud": fraud_rules} if fraud_rules is not None else {}),
        }
    ),
    st.lists(rule, min_size=1, max_size=3),
    st.none() | st.integers(0, 60),
    st.none() | st.integers(0, 150),
    st.none() | fraud,
)


IDS = [f"T{i}" for i in range(6)] + ["R0", "R1", "R2"]


@st.composite
def event(draw):
    kind = draw(st.sampled_from(["PAYMENT"] * 3 + ["REFUND"]))
    merchant = draw(st.booleans())
    payer = draw(st.sampled_from(["asha@okaxis", "asha@okaxis", "bala@oksbi", "chen@ybl"]))
    # The bank keeps txn_id unique across payers (grant ids rely on it): prefix by payer.
    prefix = payer[:4]
    suffix = draw(
        st.sampled_from(["R0", "R1", "R2", "T0"] if kind == "REFUND" else [*IDS[:6], "R0"])
    )
    # Minutes of the day: anywhere, or bunched (so the fraud windows fill up); the
    # seconds tell txn ids apart (two payments at one instant are a tie-break the
    # oracle and the core need not share).
    when = START + timedelta(
        days=draw(st.sampled_from(DAYS)),
        minutes=draw(st.integers(0, 24 * 60) | st.integers(600, 630)),
        seconds=IDS.index(suffix),
    )
    changes = {
        "txn_id": prefix + suffix,
        "kind": kind,
        "status": draw(st.sampled_from(["SUCCESS"] * 4 + ["PENDING", "FAILED"])),
        "payer_vpa": payer,
        "payee_kind": "MERCHANT" if merchant else "PERSON",
        "mcc": draw(st.sampled_from(["5411", "5812", "4121"])) if merchant else ...,
        "amount_paise": draw(st.integers(1, 600_000)),
        "event_time": when.isoformat(),
    }
    if kind == "REFUND":
        changes["original_txn_id"] = prefix + draw(
            st.sampled_from([f"T{i}" for i in range(6)] + ["X"])
        )
    return txn(**changes)


def _resends_keep_their_time(events: list[Transaction]) -> list[Transaction]:
    """Every event with a (payer, txn_id) seen before carries that first event's time,
    and a refund is never dated before the payment it names.

    The bank's guarantees: a txn_id is one transaction, so a resend (or its PENDING
    and SUCCESS) has the same ``event_time``, a refund follows its payment, and a
    refund never reuses a payment's txn_id. A
    resend of an expired payment is then beyond the horizon too, and one grant_id
    never stands for two grants.
    """
    paid: dict[tuple[str, str | None], datetime] = {}
    for e in events:
        if e.kind == "PAYMENT":
            paid.setdefault((e.payer_vpa, e.txn_id), e.event_time)
    first: dict[tuple[str, str], datetime] = {}
    out: list[Transaction] = []
    for e in events:
        own = e.event_time
        if e.kind == "REFUND":
            if (e.payer_vpa, e.txn_id) in paid:  # a txn_id is one transaction, never both
                e = e.model_copy(update={"txn_id": f"{e.txn_id}x"})
            # after its payment, never at the same instant (no time ties between txns)
            after = paid.get((e.payer_vpa, e.original_txn_id))
            own = own if after is None else max(own, after + timedelta(milliseconds=1))
        at = first.setdefault((e.payer_vpa, e.txn_id), own)
        out.append(e if at == e.event_time else e.model_copy(update={"event_time": at}))
    return out


feeds = st.lists(event(), min_size=8, max_size=50).map(_resends_keep_their_time)


def _reasons(outcome: str, reasons) -> tuple[str, ...]:
    codes = tuple(str(getattr(r, "value", r)) for r in reasons)
    return tuple(sorted(codes)) if outcome == "FRAUD_HOLD" else codes


@settings(max_examples=300, deadline=None)
@given(book=rulebooks, events=feeds)
def test_core_agrees_with_the_oracle_and_keeps_every_invariant(book, events):
    for e in events:
        note(f"{e.txn_id} {e.kind.value} {e.status.value} {e.event_time} {e.original_txn_id}")
    effects, _ = replay(events, book)
    want = expected(events, book.spec)
    assert [
        (d.txn_id, d.outcome.value, d.coins, _reasons(d.outcome.value, d.reasons))
        for d in map(decided, effects)
    ] == [(w.txn_id, w.outcome, w.coins, _reasons(w.outcome, w.reasons)) for w in want]
    # Fraud effects: the same clawbacks and alerts (the core has no circular stage here).
    # (per event, in grant_id order: one trigger's clawbacks have no order of their own)
    assert [
        sorted(
            (g.grant_id, g.coins, g.txn_id, g.cause_txn_id) for g in e.grants if g.reason == "FRAUD"
        )
        for e in effects
    ] == [
        sorted((g.grant_id, g.coins, g.txn_id, g.cause_txn_id) for g in w.fraud_grants)
        for w in want
    ]
    assert [
        (a.user_vpa, a.rule.value, a.alert_id.split(":")[0]) for e in effects for a in e.alerts
    ] == [alert for w in want for alert in w.alerts]
    assert [
        (
            g.grant_id,
            g.kind.value,
            g.coins,
            g.txn_id,
            g.cause_txn_id,
            tuple((r.rule_id, r.coins) for r in g.rules),
        )
        for e in effects
        for g in e.grants
        if g.reason != "FRAUD"
    ] == [
        (g.grant_id, g.kind, g.coins, g.txn_id, g.cause_txn_id, g.rules)
        for w in want
        for g in w.grants
    ]

    per_day: dict[tuple[str, object], int] = defaultdict(int)
    per_month: dict[tuple[str, object], int] = defaultdict(int)
    granted: dict[tuple[str, str], int] = defaultdict(int)
    clawed: dict[tuple[str, str], int] = defaultdict(int)
    ids = set()
    for e in effects:
        for g in e.grants:
            assert g.coins > 0 and g.grant_id not in ids
            ids.add(g.grant_id)
            local = g.event_time.astimezone(IST)
            if g.kind == "GRANT":
                per_day[(g.user_vpa, local.date())] += g.coins
                per_month[(g.user_vpa, (local.year, local.month))] += g.coins
                granted[(g.user_vpa, g.txn_id)] += g.coins
                assert sum(r.coins for r in g.rules) == g.coins
            else:
                clawed[(g.user_vpa, g.txn_id)] += g.coins
                if g.reason == "FRAUD":  # gives the room back (on the payment's day)
                    per_day[(g.user_vpa, local.date())] -= g.coins
                    per_month[(g.user_vpa, (local.year, local.month))] -= g.coins
    if book.daily_cap is not None:
        assert all(c <= book.daily_cap for c in per_day.values())
    if book.monthly_cap is not None:
        assert all(c <= book.monthly_cap for c in per_month.values())
    assert all(c <= granted[key] for key, c in clawed.items())

    again, _ = replay(events, book)
    assert [decided(e).model_dump_json() for e in again] == [
        decided(e).model_dump_json() for e in effects
    ]


def test_circular_reasons_agree_with_the_oracle():
    """``fraud_circular`` on the decisions of the whole pipeline (pair stage included)."""
    rb = parse_rules(
        {
            "version": "prop",
            "timezone": "Asia/Kolkata",
            "rules": [{"id": "flat", "reward": {"flat_coins": 5}}],
            "fraud": {"circular": {"window_seconds": 3600}, "cooldown_seconds": 3600},
        }
    )
    a, b = "asha@okaxis", "bala@oksbi"
    p2p = {"payee_kind": "PERSON", "mcc": ...}
    msgs = [
        raw(txn_id="A1", payer_vpa=a, payee_vpa=b, event_time=_at(0, 0), **p2p),
        raw(txn_id="B1", payer_vpa=b, payee_vpa=a, event_time=_at(0, 10), **p2p),
        raw(txn_id="A2", payer_vpa=a, payee_vpa="shop@ybl", event_time=_at(0, 20)),
        raw(txn_id="B2", payer_vpa=b, payee_vpa="shop@ybl", event_time=_at(0, 30)),
        raw(txn_id="A3", payer_vpa=a, payee_vpa="shop@ybl", event_time=_at(0, 200)),
    ]
    sim = simulate(msgs, rb)
    events = [txn(**orjson.loads(m)) for m in msgs]
    want = expected(events, rb.spec)
    got = [
        (e.decision.txn_id, e.decision.outcome.value, e.decision.coins, e.decision.reasons)
        for e in sim.effects
        if e.decision is not None
    ]
    assert got == [(w.txn_id, w.outcome, w.coins, list(w.reasons)) for w in want]
    # B1 closes the circle: decided before its flag lands, then clawed back with A1.
    assert [(t, o, r) for t, o, _, r in got] == [
        ("A1", "GRANTED", ["rule_matched"]),
        ("B1", "GRANTED", ["rule_matched"]),
        ("A2", "FRAUD_HOLD", ["fraud_circular"]),
        ("B2", "FRAUD_HOLD", ["fraud_circular"]),
        ("A3", "GRANTED", ["rule_matched"]),  # after the cooldown
    ]
    fraud = sorted(
        (g.grant_id, g.cause_txn_id) for e in sim.effects for g in e.grants if g.reason == "FRAUD"
    )
    assert fraud == [("A1:fraud-clawback", "B1"), ("B1:fraud-clawback", "B1")]
    assert fraud == sorted((g.grant_id, g.cause_txn_id) for w in want for g in w.fraud_grants)
