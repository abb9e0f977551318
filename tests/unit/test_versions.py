"""Versions of the rules in force by event time (rewards.versions) through the core."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.errors import RulesError
from rewards.ledger import MemoryState, process, replay
from rewards.rulebook import RuleBook, load_rules, parse_rules
from rewards.simulate import simulate
from rewards.validate import Source, decode
from rewards.versions import RuleVersions, VersionRefused
from schemas.grant import GrantKind
from schemas.transaction import Transaction
from tests.oracle import expected
from tests.unit.helpers import refund, txn
from tests.unit.test_properties import START, event, rulebooks
from tools.feedgen import generate
from topologies.settings import DEFAULT_RULES

SWITCH = "2026-11-25T12:00:00+05:30"


def rules(version: str, **extra: Any) -> dict[str, Any]:
    return {
        "version": version,
        "timezone": "Asia/Kolkata",
        "rules": [{"id": f"{version}-rule", "reward": {"bps": 100}}],
        **extra,
    }


def two(first: dict[str, Any] | None = None, second: dict[str, Any] | None = None) -> RuleVersions:
    v1 = parse_rules(first or rules("v1"))
    v2 = parse_rules(second or rules("v2", effective_from=SWITCH))
    return RuleVersions.of(v1, [v2])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_version_starts_exactly_at_its_effective_from():
    versions = two()
    start = at(SWITCH)
    assert versions.at(start).version == "v2"
    assert versions.at(start - timedelta(milliseconds=1)).version == "v1"
    assert versions.at(start - timedelta(microseconds=1)).version == "v1"
    # The same instant in another offset is the same instant.
    assert versions.at(at("2026-11-25T06:30:00+00:00")).version == "v2"
    assert versions.at_ms(int(start.timestamp() * 1000)).version == "v2"
    assert versions.at_ms(int(start.timestamp() * 1000) - 1).version == "v1"


def test_decisions_and_grants_carry_the_version_in_force_at_their_event_time():
    versions = two(
        second=rules("v2", effective_from=SWITCH, rules=[{"id": "boost", "reward": {"bps": 300}}])
    )
    state = MemoryState()
    before = txn(txn_id="T1", event_time="2026-11-25T11:59:59.999+05:30")
    exactly = txn(txn_id="T2", event_time=SWITCH)
    a = process(before, versions, state.user(before.payer_vpa))
    b = process(exactly, versions, state.user(exactly.payer_vpa))
    assert a.decision is not None and b.decision is not None
    assert (a.decision.rules_version, a.decision.coins) == ("v1", 10)
    assert (b.decision.rules_version, b.decision.coins) == ("v2", 30)
    assert [g.rules_version for g in a.grants] == ["v1"]
    assert [(g.rules_version, [r.rule_id for r in g.rules]) for g in b.grants] == [
        ("v2", ["boost"])
    ]


def test_the_first_version_decides_before_every_other_and_may_have_its_own_start():
    first = rules("v1", effective_from="2026-11-20T00:00:00+05:30")
    versions = two(first=first)
    assert versions.at(at("2026-01-01T00:00:00+05:30")).version == "v1"  # none in force: first
    assert versions.at(at("2026-11-22T00:00:00+05:30")).version == "v1"
    assert versions.at(at("2026-11-26T00:00:00+05:30")).version == "v2"
    assert [b.version for b in versions.books] == ["v1", "v2"]


def test_later_versions_are_ordered_by_effective_from_not_by_arrival():
    v1 = parse_rules(rules("v1"))
    v3 = parse_rules(rules("v3", effective_from="2026-11-27T00:00:00+05:30"))
    v2 = parse_rules(rules("v2", effective_from=SWITCH))
    versions = RuleVersions.of(v1, [v3, v2])
    assert versions.at(at("2026-11-26T00:00:00+05:30")).version == "v2"
    assert versions.at(at("2026-11-28T00:00:00+05:30")).version == "v3"
    assert [b.version for b in versions.books] == ["v1", "v2", "v3"]


def test_caps_count_every_coin_of_the_day_and_apply_the_cap_in_force():
    # v1: 1%, at most 100 a day; from noon v2: 3%, at most 150 a day.
    versions = two(
        rules("v1", limits={"daily_coins_per_user": 100}),
        rules(
            "v2",
            effective_from=SWITCH,
            limits={"daily_coins_per_user": 150},
            rules=[{"id": "boost", "reward": {"bps": 300}}],
        ),
    )
    feed = [
        txn(txn_id="T1", amount_paise=800_000, event_time="2026-11-25T10:00:00+05:30"),  # 80
        txn(txn_id="T2", amount_paise=800_000, event_time="2026-11-25T11:00:00+05:30"),  # 20 of 80
        txn(txn_id="T3", amount_paise=100_000, event_time="2026-11-25T12:30:00+05:30"),  # 30
        txn(txn_id="T4", amount_paise=800_000, event_time="2026-11-25T13:00:00+05:30"),  # 20 of 240
        txn(txn_id="T5", amount_paise=100_000, event_time="2026-11-25T14:00:00+05:30"),  # 0
    ]
    out, _ = replay(feed, versions)
    got = [
        (e.decision.rules_version, e.decision.coins, [r.value for r in e.decision.reasons])
        for e in out
        if e.decision is not None
    ]
    assert got == [
        ("v1", 80, ["rule_matched"]),
        ("v1", 20, ["rule_matched", "daily_cap"]),
        ("v2", 30, ["rule_matched"]),
        ("v2", 20, ["rule_matched", "daily_cap"]),
        ("v2", 0, ["rule_matched", "daily_cap"]),
    ]
    # A lower cap in the later version: what v1 granted already counts against it.
    lower = two(
        rules("v1"),
        rules("v2", effective_from=SWITCH, limits={"daily_coins_per_user": 50}),
    )
    out, _ = replay(feed[:3], lower)
    assert [e.decision.coins for e in out if e.decision] == [80, 80, 0]
    assert out[2].decision is not None and out[2].decision.rules_version == "v2"


def test_a_refund_is_decided_by_the_version_in_force_at_its_own_time():
    versions = two()
    pay = txn(txn_id="T1", event_time="2026-11-25T11:00:00+05:30")
    back = refund("R1", "T1", 100_000, event_time="2026-11-25T12:00:00+05:30")
    out, _ = replay([pay, back], versions)
    assert [(g.kind, g.coins, g.rules_version) for e in out for g in e.grants] == [
        (GrantKind.GRANT, 10, "v1"),
        (GrantKind.CLAWBACK, 10, "v2"),
    ]


def test_a_replay_decides_as_the_first_pass_did():
    versions = two()
    feed = [txn(txn_id=f"T{i}", event_time=f"2026-11-25T{10 + i}:00:00+05:30") for i in range(4)]
    state = MemoryState()
    first = [
        process(t, versions, state.user(t.payer_vpa), f"upi.transactions:0:{i}")
        for i, t in enumerate(feed)
    ]
    again = [
        process(t, versions, state.user(t.payer_vpa), f"upi.transactions:0:{i}")
        for i, t in enumerate(feed)
    ]
    assert all(e.replay for e in again)
    # From scratch (a lost state), the same versions decide the same.
    fresh = MemoryState()
    redo = [
        process(t, versions, fresh.user(t.payer_vpa), f"upi.transactions:0:{i}")
        for i, t in enumerate(feed)
    ]
    assert [e.decision for e in redo] == [e.decision for e in first]
    assert [e.decision.rules_version for e in first if e.decision] == ["v1", "v1", "v2", "v2"]


def test_one_version_decides_exactly_as_the_rule_book_alone():
    book = load_rules(DEFAULT_RULES)
    feed = [m.value for m in generate(3000, seed=5, bad_share=0.01, fraud_share=0.05)]
    alone, versioned = simulate(feed, book), simulate(feed, RuleVersions.of(book))
    assert [(e.decision, e.grants, e.alerts) for e in alone.effects] == [
        (e.decision, e.grants, e.alerts) for e in versioned.effects
    ]


def _versioned_launch() -> tuple[RuleBook, RuleBook]:
    book = load_rules(DEFAULT_RULES)
    data = book.spec.model_dump(mode="json", exclude_none=True)
    data.update(
        version="2026-11-20-festive",
        effective_from="2026-11-20T12:00:00+05:30",
        limits={"daily_coins_per_user": 120, "monthly_coins_per_user": 2000},
    )
    data["rules"][0]["reward"] = {"bps": 250, "max_coins": 80}
    return book, parse_rules(data)


def test_a_fed_pipeline_with_two_versions_equals_the_oracle_grant_by_grant():
    book, festive = _versioned_launch()
    versions = RuleVersions.of(book, [festive])
    feed = [m.value for m in generate(4000, seed=7, bad_share=0.01, fraud_share=0.05)]
    sim = simulate(feed, versions)
    valid = [t for t in (decode(v, Source("t", 0, 0)) for v in feed) if isinstance(t, Transaction)]
    want = expected(valid, book.spec, [festive.spec])
    assert {d.rules_version for d in want} == {book.version, festive.version}
    got_decisions = [e.decision for e in sim.effects if e.decision is not None]
    assert [(d.txn_id, d.outcome.value, d.coins, d.rules_version) for d in got_decisions] == [
        (d.txn_id, d.outcome, d.coins, d.rules_version) for d in want
    ]
    want_grants = {g.grant_id: g for d in want for g in (*d.grants, *d.fraud_grants)}
    got_grants = [g for e in sim.effects for g in e.grants]
    assert len(got_grants) == len(want_grants) > 100
    by_version: dict[str, int] = defaultdict(int)
    for g in got_grants:
        w = want_grants[g.grant_id]
        assert (g.kind.value, g.user_vpa, g.coins, g.txn_id, g.cause_txn_id, g.rules_version) == (
            w.kind,
            w.user_vpa,
            w.coins,
            w.txn_id,
            w.cause_txn_id,
            w.rules_version,
        )
        if g.kind is GrantKind.GRANT:
            assert tuple((r.rule_id, r.coins) for r in g.rules) == w.rules
        by_version[g.rules_version] += 1
    assert by_version[book.version] > 10 and by_version[festive.version] > 10


def test_refusals_name_why():
    versions = two()
    same = parse_rules(rules("v2", effective_from=SWITCH))
    assert versions.add(same) is versions  # the same contents again: a no-op
    with pytest.raises(VersionRefused, match="immutable"):
        versions.add(parse_rules(rules("v2", effective_from="2026-11-26T00:00:00+05:30")))
    with pytest.raises(VersionRefused, match="effective_from: required"):
        versions.add(parse_rules(rules("v3")))
    with pytest.raises(VersionRefused, match="is already version 'v2'"):
        versions.add(parse_rules(rules("v3", effective_from="2026-11-25T06:30:00Z")))
    with pytest.raises(VersionRefused, match="timezone"):
        versions.add(
            parse_rules(rules("v3", effective_from="2026-11-27T00:00:00Z", timezone="UTC"))
        )
    with pytest.raises(VersionRefused, match="fraud"):
        versions.add(
            parse_rules(
                rules(
                    "v3",
                    effective_from="2026-11-27T00:00:00Z",
                    fraud={"velocity": {"max_payments": 3, "window_seconds": 60}},
                )
            )
        )
    assert issubclass(VersionRefused, RulesError)


def test_effective_from_must_carry_an_offset_and_the_error_names_the_field():
    with pytest.raises(RulesError, match="effective_from"):
        parse_rules(rules("v2", effective_from="2026-11-25T12:00:00"))
    assert parse_rules(rules("v1")).spec.effective_from is None


def test_a_fraud_clawback_carries_the_version_in_force_at_its_trigger_payment():
    # T2 arrives late, before the switch; it breaks the window ending at T3, after it.
    fraud = {"velocity": {"max_payments": 2, "window_seconds": 600}}
    first, second = rules("v1", fraud=fraud), rules("v2", effective_from=SWITCH, fraud=fraud)
    versions = two(first, second)
    feed = [
        txn(txn_id="T1", event_time="2026-11-25T11:55:00+05:30"),
        txn(txn_id="T3", event_time="2026-11-25T12:02:00+05:30"),
        txn(txn_id="T2", event_time="2026-11-25T11:58:00+05:30"),
    ]
    out, _ = replay(feed, versions)
    late = out[2]
    assert late.decision is not None and late.decision.rules_version == "v1"
    assert [a.alert_id.split(":")[0] for a in late.alerts] == ["T3"]
    clawbacks = [(g.txn_id, g.rules_version) for g in late.grants]
    assert clawbacks == [("T1", "v2"), ("T3", "v2")]
    want = expected(feed, parse_rules(first).spec, [parse_rules(second).spec])
    assert [(g.txn_id, g.rules_version) for g in want[2].fraud_grants] == clawbacks


@settings(max_examples=200, deadline=None)
@given(
    first=rulebooks,
    later=st.lists(
        st.tuples(rulebooks, st.integers(0, 4 * 24 * 60)),
        min_size=1,
        max_size=3,
        unique_by=lambda x: x[1],
    ),
    events=st.lists(event(), max_size=40),
)
def test_versions_through_the_core_agree_with_the_oracle(first, later, events):
    # Version choice, caps and rules_version; no detectors (the rulebooks strategy may
    # draw them): fraud across versions is held by the fixed tests above.
    plain = first.spec.model_dump(mode="json", exclude_none=True)
    plain.pop("fraud", None)
    first = parse_rules(plain)
    specs = []
    for n, (book, minutes) in enumerate(later):
        data = book.spec.model_dump(mode="json", exclude_none=True)
        data.update(
            version=f"later-{n}", effective_from=(START + timedelta(minutes=minutes)).isoformat()
        )
        data.pop("fraud", None)
        specs.append(parse_rules(data))
    versions = RuleVersions.of(first, specs)
    effects, _ = replay(events, versions)
    want = expected(events, first.spec, [b.spec for b in specs])
    assert [
        (e.decision.txn_id, e.decision.outcome.value, e.decision.coins, e.decision.rules_version)
        for e in effects
        if e.decision
    ] == [(w.txn_id, w.outcome, w.coins, w.rules_version) for w in want]
    assert [
        (
            g.grant_id,
            g.kind.value,
            g.coins,
            g.rules_version,
            tuple((r.rule_id, r.coins) for r in g.rules),
        )
        for e in effects
        for g in e.grants
    ] == [(g.grant_id, g.kind, g.coins, g.rules_version, g.rules) for w in want for g in w.grants]
