"""The fraud detectors as pure code: window edges, order, cooldowns, holds, clawbacks."""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.ledger import Effects, MemoryState, process
from rewards.rulebook import RuleBook, parse_rules
from rewards.simulate import simulate
from rewards.state import encode_user
from rewards.validate import Source, decode
from schemas.decision import Outcome, Reason
from schemas.grant import GrantKind, GrantReason
from schemas.transaction import Transaction
from tests.oracle import expected, expected_balances
from tests.unit.helpers import book, decided, raw, refund, txn
from tools.feedgen import generate
from topologies.settings import DEFAULT_RULES

T0 = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 09:30 IST
PAYER = "farmer.one@okaxis"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def pay(
    n: int, seconds: float, payee: str = "shop.a@ybl", payer: str = PAYER, **kw: Any
) -> Transaction:
    return txn(txn_id=f"T{n:04d}", payer_vpa=payer, payee_vpa=payee, event_time=at(seconds), **kw)


def velocity(limit: int = 3, window: int = 600, cooldown: int = 3600, **more: Any) -> RuleBook:
    return book(
        fraud={
            "velocity": {"max_payments": limit, "window_seconds": window},
            "cooldown_seconds": cooldown,
            **more,
        }
    )


def run(rb: RuleBook, txns: list[Transaction], state: MemoryState | None = None) -> list[Effects]:
    state = MemoryState() if state is None else state
    out = []
    for t in txns:
        out.append(process(t, rb, state.user(t.payer_vpa)))
    return out


def test_velocity_window_is_inclusive_at_exactly_w_and_not_at_w_plus_1s():
    rb = velocity()
    edge = run(rb, [pay(1, 0), pay(2, 100), pay(3, 200), pay(4, 600)])
    assert [a.rule.value for a in edge[3].alerts] == ["velocity"]
    assert edge[3].alerts[0].txn_ids == ["T0001", "T0002", "T0003", "T0004"]
    past = run(rb, [pay(1, 0), pay(2, 100), pay(3, 200), pay(4, 601)])
    assert all(not e.alerts for e in past)
    assert decided(past[3]).outcome is Outcome.GRANTED


def test_a_flag_holds_the_trigger_and_claws_back_the_window():
    rb = velocity()
    effects = run(rb, [pay(1, 0), pay(2, 100), pay(3, 200), pay(4, 300)])
    assert [decided(e).outcome for e in effects[:3]] == [Outcome.GRANTED] * 3
    trigger = effects[3]
    assert decided(trigger).outcome is Outcome.FRAUD_HOLD
    assert decided(trigger).reasons == [Reason.FRAUD_VELOCITY]
    assert decided(trigger).coins == 0
    claws = {g.grant_id: g for g in trigger.grants}
    assert set(claws) == {"T0001:fraud-clawback", "T0002:fraud-clawback", "T0003:fraud-clawback"}
    for n, g in enumerate(sorted(claws.values(), key=lambda g: g.grant_id), start=1):
        assert (g.kind, g.reason, g.cause_txn_id) == (
            GrantKind.CLAWBACK,
            GrantReason.FRAUD,
            "T0004",
        )
        assert g.coins == effects[n - 1].grants[0].coins
    alert = trigger.alerts[0]
    assert alert.alert_id == f"T0004:velocity:{PAYER}"
    assert alert.cooldown_until == T0 + timedelta(seconds=300 + 3600)
    assert alert.window_seconds == 600


def test_cooldown_holds_until_its_end_extends_on_a_new_flag_and_suppresses_alerts():
    rb = velocity(cooldown=3600)
    burst = [pay(i, i * 10) for i in range(1, 5)]  # flag at t=40
    later = [
        pay(10, 3639),  # still inside: held
        pay(11, 3640),  # cooldown_until = 40 + 3600: free again
    ]
    effects = run(rb, burst + later)
    assert decided(effects[3]).outcome is Outcome.FRAUD_HOLD
    assert len([a for e in effects for a in e.alerts]) == 1
    assert decided(effects[4]).outcome is Outcome.FRAUD_HOLD
    assert decided(effects[5]).outcome is Outcome.GRANTED
    # A second burst inside the cooldown extends it without a second alert.
    again = run(rb, [*burst, pay(5, 3000), pay(6, 3010), pay(7, 3020), pay(8, 3030), pay(9, 6500)])
    assert len([a for e in again for a in e.alerts]) == 1
    assert decided(again[-1]).outcome is Outcome.FRAUD_HOLD  # 3030 + 3600 > 6500
    after = run(rb, [*burst, pay(5, 3000), pay(6, 3010), pay(7, 3020), pay(8, 3030), pay(9, 6630)])
    assert decided(after[-1]).outcome is Outcome.GRANTED


def test_a_new_flag_after_the_cooldown_alerts_again():
    rb = velocity(cooldown=600)
    first = [pay(i, i) for i in range(1, 5)]
    second = [pay(10 + i, 2000 + i) for i in range(1, 5)]
    alerts = [a for e in run(rb, first + second) for a in e.alerts]
    assert [a.alert_id for a in alerts] == [
        f"T0004:velocity:{PAYER}",
        f"T0014:velocity:{PAYER}",
    ]


def test_out_of_order_payment_completes_a_later_window():
    rb = velocity(limit=3)
    # 0, 100, 300 arrive first; then 200 arrives late: the window ending at 300 now has 4.
    effects = run(rb, [pay(1, 0), pay(2, 100), pay(3, 300), pay(4, 200)])
    assert [decided(e).outcome for e in effects[:3]] == [Outcome.GRANTED] * 3
    assert [a.alert_id for a in effects[3].alerts] == [f"T0003:velocity:{PAYER}"]
    assert decided(effects[3]).outcome is Outcome.FRAUD_HOLD  # inside the flagged window
    assert {g.txn_id for g in effects[3].grants} == {"T0001", "T0002", "T0003"}


def test_same_payee_counts_one_payee_only():
    rb = book(fraud={"same_payee": {"max_payments": 2, "window_seconds": 3600}})
    mixed = run(
        rb, [pay(1, 0, "aa@ybl"), pay(2, 10, "bb@ybl"), pay(3, 20, "aa@ybl"), pay(4, 30, "bb@ybl")]
    )
    assert not any(e.alerts for e in mixed)
    third = run(
        rb,
        [pay(1, 0, "aa@ybl"), pay(2, 10, "bb@ybl"), pay(3, 20, "aa@ybl"), pay(4, 3600, "aa@ybl")],
    )
    assert [a.rule.value for a in third[3].alerts] == ["same_payee"]
    assert third[3].alerts[0].txn_ids == ["T0001", "T0003", "T0004"]
    edge = run(rb, [pay(1, 0, "aa@ybl"), pay(3, 20, "aa@ybl"), pay(4, 3601, "aa@ybl")])
    assert not any(e.alerts for e in edge)


def test_late_events_are_decided_but_not_windowed():
    rb = velocity(limit=2, window=600)
    effects = run(rb, [pay(1, 10_000), pay(2, 1000), pay(3, 1001), pay(4, 1002), pay(5, 1003)])
    assert [e.late for e in effects] == [False, True, True, True, True]
    assert not any(e.alerts for e in effects)
    assert all(decided(e).outcome is Outcome.GRANTED for e in effects)


# The demo's missed farmer (docs/fraud.md, "Late events"): 11 payments in 80 s,
# over a limit of 10 in 600 s, arriving after a payment of the same user dated
# 9 h after the burst's first. LATE_BY is how far the first lies behind it.
BURST = [pay(n, n * 8) for n in range(1, 12)]
AHEAD = pay(99, 9 * 3600 + 8)
LATE_BY = 9 * 3600


@pytest.mark.parametrize(
    ("allowance", "late"),
    [
        (LATE_BY, [False] * 11),  # exactly the allowance behind: still windowed
        (LATE_BY - 1, [True] + [False] * 10),  # the first is late, 10 are not over the limit
        (3600, [True] * 11),
        (None, [True] * 11),  # default: the largest payer window (600 s here)
    ],
)
def test_a_burst_behind_a_later_payment_is_flagged_only_within_the_allowance(allowance, late):
    more = {} if allowance is None else {"allowed_lateness_seconds": allowance}
    rb = velocity(limit=10, window=600, **more)
    effects = run(rb, [AHEAD, *BURST])
    assert [e.late for e in effects] == [False, *late]
    alerts = [a for e in effects for a in e.alerts]
    if late == [False] * 11:
        assert [a.alert_id for a in alerts] == [f"T0011:velocity:{PAYER}"]
        assert alerts[0].txn_ids == [f"T{n:04d}" for n in range(1, 12)]
        assert decided(effects[-1]).outcome is Outcome.FRAUD_HOLD
        claws = {g.txn_id for g in effects[-1].grants if g.kind is GrantKind.CLAWBACK}
        assert claws == {f"T{n:04d}" for n in range(1, 11)}
        assert decided(effects[0]).outcome is Outcome.GRANTED  # 9 h on: outside the hold
    else:
        assert alerts == []
        assert all(decided(e).outcome is Outcome.GRANTED for e in effects)


def test_state_keeps_what_a_burst_split_by_a_later_payment_needs():
    # Half the burst, then the later payment (which prunes), then the rest:
    # the first half must still be in the state for the window to reach 11.
    rb = velocity(limit=10, window=600, allowed_lateness_seconds=LATE_BY)
    effects = run(rb, [*BURST[:6], AHEAD, *BURST[6:]])
    alerts = [a for e in effects for a in e.alerts]
    assert [a.alert_id for a in alerts] == [f"T0011:velocity:{PAYER}"]
    assert alerts[0].txn_ids == [f"T{n:04d}" for n in range(1, 12)]


def test_state_reaches_exactly_one_window_behind_the_allowance():
    rb = velocity(limit=1, window=600, allowed_lateness_seconds=3600)
    # T2 lies exactly the allowance behind T3; its window [0, 600] needs T1,
    # which lies the allowance plus one window behind.
    effects = run(rb, [pay(1, 0), pay(3, 4200), pay(2, 600)])
    assert not effects[2].late
    alerts = [a for e in effects for a in e.alerts]
    assert [(a.alert_id, a.txn_ids) for a in alerts] == [
        (f"T0002:velocity:{PAYER}", ["T0001", "T0002"])
    ]
    # One ms further on, no allowed payment's window can reach T1: forgotten.
    for ahead, kept in ((4200, ["T0001", "T0003"]), (4200.001, ["T0003"])):
        state = MemoryState()
        run(rb, [pay(1, 0), pay(3, ahead)], state)
        assert [s[1] for s in state[PAYER].fraud.seen] == kept


def test_default_allowance_is_the_largest_payer_window_not_the_circular_one():
    rb = book(
        fraud={
            "velocity": {"max_payments": 10, "window_seconds": 600},
            "same_payee": {"max_payments": 5, "window_seconds": 3600},
            "circular": {"window_seconds": 86400},
        }
    )
    cfg = rb.fraud
    assert (cfg.late_ms, cfg.pair_late_ms, cfg.seen_ms) == (3_600_000, 86_400_000, 7_200_000)
    effects = run(rb, [pay(1, 10_000), pay(2, 10_000 - 3600), pay(3, 10_000 - 3601)])
    assert [e.late for e in effects] == [False, False, True]
    zero = book(
        fraud={
            "velocity": {"max_payments": 10, "window_seconds": 600},
            "allowed_lateness_seconds": 0,
        }
    )
    assert (zero.fraud.late_ms, zero.fraud.seen_ms) == (0, 600_000)
    assert [e.late for e in run(zero, [pay(1, 100), pay(2, 100), pay(3, 99)])] == [
        False,
        False,
        True,
    ]


def test_only_success_payments_count():
    rb = velocity(limit=2)
    events = [
        pay(1, 0),
        pay(2, 1, status="FAILED"),
        pay(3, 2, status="PENDING"),
        pay(4, 3),
        refund("R1", "T0001", 100, payer_vpa=PAYER, event_time=at(4)),
    ]
    assert not any(e.alerts for e in run(rb, events))


def test_fraud_clawback_never_exceeds_what_is_left_and_a_later_refund_takes_nothing():
    rb = velocity(limit=2)
    effects = run(
        rb,
        [
            pay(1, 0, amount_paise=100_000),  # 10 coins
            refund("R1", "T0001", 40_000, payer_vpa=PAYER, event_time=at(1)),  # claws 4
            pay(2, 2),
            pay(3, 3),  # flag: T0001 has 6 left, T0002 10
            refund("R2", "T0001", 60_000, payer_vpa=PAYER, event_time=at(4)),
        ],
    )
    claws = {g.txn_id: g.coins for g in effects[3].grants}
    assert claws == {"T0001": 6, "T0002": 10}
    assert effects[4].grants == ()
    assert decided(effects[4]).reasons == [Reason.NOTHING_LEFT]


def test_fraud_clawbacks_give_cap_room_back():
    rb = book(
        daily=25,
        fraud={"velocity": {"max_payments": 2, "window_seconds": 60}, "cooldown_seconds": 60},
    )
    effects = run(rb, [pay(1, 0), pay(2, 1), pay(3, 2), pay(4, 200)])  # 10 + 10, flag, later
    assert [decided(e).outcome for e in effects] == [
        Outcome.GRANTED,
        Outcome.GRANTED,
        Outcome.FRAUD_HOLD,
        Outcome.GRANTED,
    ]
    assert decided(effects[3]).coins == 10  # not 5: the clawed 20 are room again


def test_zero_cooldown_alerts_every_time_and_still_holds_the_trigger():
    rb = velocity(limit=1, cooldown=0)
    effects = run(rb, [pay(1, 0), pay(2, 1), pay(3, 2)])
    assert [len(e.alerts) for e in effects] == [0, 1, 1]
    assert decided(effects[1]).outcome is Outcome.FRAUD_HOLD
    assert decided(effects[2]).outcome is Outcome.FRAUD_HOLD


CIRCULAR = {"circular": {"window_seconds": 3600}, "cooldown_seconds": 7200}
A, B = "aarav.shah1@okaxis", "zoya.khan2@ybl"


def p2p(n: int, seconds: float, payer: str, payee: str) -> bytes:
    return raw(
        txn_id=f"T{n:04d}",
        payer_vpa=payer,
        payee_vpa=payee,
        payee_kind="PERSON",
        mcc=...,
        event_time=at(seconds),
    )


@pytest.mark.parametrize(("gap", "flagged"), [(3600, True), (3601, False)])
def test_circular_window_edge_flags_both_users(gap, flagged):
    sim = simulate([p2p(1, 0, A, B), p2p(2, gap, B, A)], book(fraud=CIRCULAR))
    got = sorted((a.user_vpa, a.rule.value, a.alert_id) for a in sim.alerts)
    if flagged:
        assert got == [
            (A, "circular", f"T0002:circular:{A}"),
            (B, "circular", f"T0002:circular:{B}"),
        ]
        assert sim.balances() == {A: 0, B: 0}  # A's grant clawed back, B's held
    else:
        assert got == []


def test_circular_ignores_one_way_money_resends_and_self_payments():
    msgs = [p2p(1, 0, A, B), p2p(2, 60, A, B), p2p(2, 60, A, B), p2p(3, 120, A, A)]
    assert simulate(msgs, book(fraud=CIRCULAR)).alerts == []


def test_circular_out_of_order_reverse_payment_flags_the_later_one():
    sim = simulate([p2p(1, 1000, A, B), p2p(2, 500, B, A)], book(fraud=CIRCULAR))
    assert sorted(a.alert_id for a in sim.alerts) == [f"T0001:circular:{A}", f"T0001:circular:{B}"]


@pytest.mark.parametrize(("allowance", "flagged"), [(None, False), (6000, True), (5999, False)])
def test_circular_late_allowance_is_the_rules_one_when_set(allowance, flagged):
    # Window 3600 s. T2 (A->B at 5000) is 5000 s behind the pair's newest,
    # T3 (B->A at 4000) 6000 s: both late by default, both windowed from 6000 s.
    more = {} if allowance is None else {"allowed_lateness_seconds": allowance}
    fraud = {**CIRCULAR, **more}
    msgs = [p2p(1, 10_000, A, B), p2p(2, 5000, A, B), p2p(3, 4000, B, A)]
    sim = simulate(msgs, book(fraud=fraud))
    got = sorted(a.alert_id for a in sim.alerts)
    assert got == ([f"T0002:circular:{A}", f"T0002:circular:{B}"] if flagged else [])


def test_circular_state_reaches_one_window_behind_the_allowance():
    # T3 lies exactly the allowance (7200 s) behind T2; its window [0, 3600]
    # needs T1, the allowance plus one window behind.
    fraud = {**CIRCULAR, "allowed_lateness_seconds": 7200}
    msgs = [p2p(1, 0, B, A), p2p(2, 10_800, A, B), p2p(3, 3600, A, B)]
    sim = simulate(msgs, book(fraud=fraud))
    assert sorted(a.alert_id for a in sim.alerts) == [f"T0003:circular:{A}", f"T0003:circular:{B}"]
    assert [a.txn_ids for a in sim.alerts] == [["T0001", "T0003"]] * 2


def test_state_per_user_stays_bounded_however_long_the_stream_runs():
    rb = book(
        fraud={
            "velocity": {"max_payments": 10, "window_seconds": 600},
            "same_payee": {"max_payments": 5, "window_seconds": 3600},
            "circular": {"window_seconds": 86400},
        }
    )
    state = MemoryState()
    sizes = []
    for day in range(200):
        run(rb, [pay(day * 100 + i, day * 86400 + i * 3000) for i in range(8)], state)
        if day in (70, 199):
            user = state[PAYER]
            sizes.append((len(user.txns), len(user.days), len(encode_user(user))))
    (txns_70, _days_70, bytes_70), (txns_199, days_199, bytes_199) = sizes
    assert txns_199 <= txns_70 + 8  # records older than the horizon are dropped
    assert txns_199 <= 8 * 63  # 63 days of records at most
    assert days_199 <= 63
    assert bytes_199 <= bytes_70 * 1.1


@pytest.mark.parametrize("allowance", [None, 0, 1800, 86_400])
def test_core_agrees_with_the_oracle_on_a_feed_read_partitions_hours_apart(allowance):
    """A fast replay's order: whatever the allowance, alerts and coins are the oracle's."""
    rules = yaml.safe_load(DEFAULT_RULES.read_text())
    rules["fraud"].pop("allowed_lateness_seconds", None)
    if allowance is not None:
        rules["fraud"]["allowed_lateness_seconds"] = allowance
    rb = parse_rules(rules)
    messages = list(generate(3000, seed=5, users=60, fraud_share=0.1))
    parts: list[list[bytes | None]] = [[] for _ in range(4)]
    for m in messages:
        parts[zlib.crc32(m.key or b"") % 4].append(m.value)
    rng, order = random.Random(3), []
    while any(parts):
        part = rng.choice([p for p in parts if p])
        take = rng.randrange(1, 600)
        order.extend(part[:take])
        del part[:take]
    sim = simulate(order, rb)
    valid = [t for t in (decode(v, Source("t", 0, 0)) for v in order) if isinstance(t, Transaction)]
    want = expected(valid, rb.spec)
    assert {(a.user_vpa, a.rule.value, a.alert_id.split(":")[0]) for a in sim.alerts} == {
        alert for d in want for alert in d.alerts
    }
    assert sim.balances() == expected_balances(want)
    late = sum(e.late for e in sim.effects)
    assert (late == 0) if allowance == 86_400 else (late > 100)  # the order does matter


USERS = ("aarav.one@okaxis", "bela.two@ybl", "chetan.three@oksbi")
MERCHANTS = ("kirana.one@ybl", "chai.two@paytm")
VEL, SAME, CIRC = (3, 600), (2, 900), 1200


def _events(draw_list: list[tuple[int, int, int]]) -> list[tuple[str, str, str, int]]:
    out = []
    for n, (payer, payee, seconds) in enumerate(draw_list):
        payees = [u for i, u in enumerate(USERS) if i != payer] + list(MERCHANTS)
        out.append((f"T{n:04d}", USERS[payer], payees[payee % len(payees)], seconds))
    return out


def _violations(
    events: list[tuple[str, str, str, int]], lateness: int | None = None
) -> set[tuple[str, str, str, int]]:
    """Every (user, rule, trigger) whose window breaks its rule over the final input.

    Cooldowns are not applied here: the caller checks them against the alerts.
    """
    # The allowance: by default the payer's largest window; pairs' the circular one.
    largest = max(VEL[1], SAME[1]) * 1000 if lateness is None else lateness * 1000
    pair_late = CIRC * 1000 if lateness is None else lateness * 1000
    newest: dict[str, int] = {}
    windowed: dict[str, list[tuple[int, str, str]]] = {}
    pair_newest: dict[frozenset[str], int] = {}
    pair_windowed: dict[frozenset[str], list[tuple[int, str, str]]] = {}
    for txn_id, payer, payee, s in events:
        t = s * 1000
        if payer not in newest or t >= newest[payer] - largest:
            windowed.setdefault(payer, []).append((t, txn_id, payee))
        newest[payer] = max(newest.get(payer, t), t)
        if payee in USERS:
            pair = frozenset((payer, payee))
            if pair not in pair_newest or t >= pair_newest[pair] - pair_late:
                pair_windowed.setdefault(pair, []).append((t, txn_id, payer))
            pair_newest[pair] = max(pair_newest.get(pair, t), t)
    found: set[tuple[str, str, str, int]] = set()
    for user, pays in windowed.items():
        for t, txn_id, payee in pays:
            near = [(tt, pp) for tt, _, pp in pays if t - VEL[1] * 1000 <= tt <= t]
            if len(near) > VEL[0]:
                found.add((user, "velocity", txn_id, t))
            same = [1 for tt, _, pp in pays if t - SAME[1] * 1000 <= tt <= t and pp == payee]
            if len(same) > SAME[0]:
                found.add((user, "same_payee", txn_id, t))
    for pair, pays in pair_windowed.items():
        for t, txn_id, payer in pays:
            if any(t - CIRC * 1000 <= tt <= t and pp != payer for tt, _, pp in pays):
                for user in pair:
                    found.add((user, "circular", txn_id, t))
    return found


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(0, 2400)),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0, 300, 1200]),
    st.sampled_from([None, 0, 300, 1500, 2400]),
)
def test_alerts_fire_exactly_when_a_rule_truly_holds_unless_a_cooldown_covers_it(
    draws, cooldown, lateness
):
    events = _events(draws)
    rb = book(
        fraud={
            "velocity": {"max_payments": VEL[0], "window_seconds": VEL[1]},
            "same_payee": {"max_payments": SAME[0], "window_seconds": SAME[1]},
            "circular": {"window_seconds": CIRC},
            "cooldown_seconds": cooldown,
            **({} if lateness is None else {"allowed_lateness_seconds": lateness}),
        }
    )
    msgs = []
    for txn_id, payer, payee, s in events:
        kind = {"payee_kind": "PERSON", "mcc": ...} if payee in USERS else {}
        msgs.append(raw(txn_id=txn_id, payer_vpa=payer, payee_vpa=payee, event_time=at(s), **kind))
    alerts = simulate(msgs, rb).alerts
    truth = _violations(events, lateness)
    by_trigger = {(u, r, x): t for u, r, x, t in truth}
    # Sound: no alert unless its rule truly holds over the input, at its trigger.
    for a in alerts:
        key = (a.user_vpa, a.rule.value, a.alert_id.split(":")[0])
        assert key in by_trigger, a
    # Complete: every breaking window alerts, unless a cooldown of its rule covers it
    # (cooldowns start at alerts and are extended by covered windows).
    alerted = {(a.user_vpa, a.rule.value, a.alert_id.split(":")[0]) for a in alerts}
    starts: dict[tuple[str, str], list[int]] = {}
    for u, r, x in alerted:
        starts.setdefault((u, r), []).append(by_trigger[(u, r, x)])
    for u, r, x, t in sorted(truth, key=lambda v: v[3]):
        if (u, r, x) in alerted:
            continue
        covering = [s for s in starts.get((u, r), []) if s <= t < s + cooldown * 1000]
        assert covering, f"{r} window ending at {x} ({t} ms) for {u} raised no alert"
        starts[(u, r)].append(t)
    assert len(alerted) == len(alerts)  # one alert per trigger, rule and user
