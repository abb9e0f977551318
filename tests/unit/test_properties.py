"""Properties of the core over random event sequences, judged by the oracle."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.ledger import replay
from rewards.rulebook import parse_rules
from tests.oracle import expected
from tests.unit.helpers import txn

IST = ZoneInfo("Asia/Kolkata")
# Around an IST month end, so day and month caps both roll over.
START = datetime(2026, 11, 29, 20, 0, tzinfo=UTC)

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
            },
        )
    },
)
rulebooks = st.builds(
    lambda rules, daily, monthly: parse_rules(
        {
            "version": "prop",
            "timezone": "Asia/Kolkata",
            "limits": {
                k: v
                for k, v in (("daily_coins_per_user", daily), ("monthly_coins_per_user", monthly))
                if v is not None
            },
            "rules": [{"id": f"r{i}", **r} for i, r in enumerate(rules)],
        }
    ),
    st.lists(rule, min_size=1, max_size=3),
    st.none() | st.integers(0, 60),
    st.none() | st.integers(0, 150),
)


@st.composite
def event(draw):
    kind = draw(st.sampled_from(["PAYMENT"] * 3 + ["REFUND"]))
    merchant = draw(st.booleans())
    payer = draw(st.sampled_from(["asha@okaxis", "bala@oksbi", "chen@ybl"]))
    # The bank keeps txn_id unique across payers (grant ids rely on it): prefix by payer.
    prefix = payer[:4]
    changes = {
        "txn_id": prefix + draw(st.sampled_from([f"T{i}" for i in range(6)] + ["R0", "R1", "R2"])),
        "kind": kind,
        "status": draw(st.sampled_from(["SUCCESS"] * 4 + ["PENDING", "FAILED"])),
        "payer_vpa": payer,
        "payee_kind": "MERCHANT" if merchant else "PERSON",
        "mcc": draw(st.sampled_from(["5411", "5812", "4121"])) if merchant else ...,
        "amount_paise": draw(st.integers(1, 600_000)),
        "event_time": (START + timedelta(minutes=draw(st.integers(0, 4 * 24 * 60)))).isoformat(),
    }
    if kind == "REFUND":
        changes["original_txn_id"] = prefix + draw(
            st.sampled_from([f"T{i}" for i in range(6)] + ["X"])
        )
    return txn(**changes)


@settings(max_examples=300, deadline=None)
@given(book=rulebooks, events=st.lists(event(), max_size=40))
def test_core_agrees_with_the_oracle_and_keeps_every_invariant(book, events):
    effects, _ = replay(events, book)
    want = expected(events, book.spec)
    assert [(e.decision.txn_id, e.decision.outcome.value, e.decision.coins) for e in effects] == [
        (w.txn_id, w.outcome, w.coins) for w in want
    ]
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
    if book.daily_cap is not None:
        assert all(c <= book.daily_cap for c in per_day.values())
    if book.monthly_cap is not None:
        assert all(c <= book.monthly_cap for c in per_month.values())
    assert all(c <= granted[key] for key, c in clawed.items())

    again, _ = replay(events, book)
    assert [e.decision.model_dump_json() for e in again] == [
        e.decision.model_dump_json() for e in effects
    ]
