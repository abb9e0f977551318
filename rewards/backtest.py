"""A backtest: the whole pipeline through the pure core over history, and its summary.

``upi-rewards simulate`` (topologies/backtest_cli.py) feeds raw feed messages
to ``rewards.simulate`` with the new rules (and the baseline, when given) and
summarises what the pipeline would have emitted for them:

* ``events``: valid events decided (one decision each); ``dead_letters``: the
  messages that failed validation (``events + dead_letters`` = messages read);
* ``coins_granted`` / ``coins_clawed_back``: the coins of every GRANT / every
  CLAWBACK (refunds and fraud) grant record; ``grants``: GRANT records;
* ``by_rule``: coins of the GRANT records per rule (their ``rules`` split);
* ``users_capped_daily`` / ``users_capped_monthly``: users with at least one
  decision cut by that cap (reason ``daily_cap`` / ``monthly_cap``);
* ``fraud_holds``: decisions with outcome ``FRAUD_HOLD``.

The same numbers follow from the pipeline's own output topics for the same
feed and rules (``summary_of_outputs``; tests/integration/test_backtest.py).
``Details`` keeps what the report's charts need (per day, per MCC, per user).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rewards.ledger import Rules
from rewards.simulate import Simulation, simulate
from schemas.decision import Outcome, Reason
from schemas.grant import GrantKind

SUMMARY_KEYS = (
    "events",
    "dead_letters",
    "coins_granted",
    "coins_clawed_back",
    "grants",
    "by_rule",
    "users_capped_daily",
    "users_capped_monthly",
    "fraud_holds",
)


class _Tally:
    """The summary's counts, fed one output at a time (the simulation's or a topic's)."""

    def __init__(self) -> None:
        self.events = self.dead_letters = 0
        self.coins_granted = self.coins_clawed_back = self.grants = self.fraud_holds = 0
        self.by_rule: Counter[str] = Counter()
        self.capped_daily: set[str] = set()
        self.capped_monthly: set[str] = set()

    def decision(self, user: str, outcome: str, reasons: Iterable[str]) -> None:
        self.events += 1
        if outcome == Outcome.FRAUD_HOLD.value:
            self.fraud_holds += 1
        for reason in reasons:
            if reason == Reason.DAILY_CAP.value:
                self.capped_daily.add(user)
            elif reason == Reason.MONTHLY_CAP.value:
                self.capped_monthly.add(user)

    def grant(self, kind: str, coins: int, rules: Iterable[tuple[str, int]]) -> None:
        if kind == GrantKind.GRANT.value:
            self.grants += 1
            self.coins_granted += coins
            for rule_id, rule_coins in rules:
                self.by_rule[rule_id] += rule_coins
        else:
            self.coins_clawed_back += coins

    def summary(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "dead_letters": self.dead_letters,
            "coins_granted": self.coins_granted,
            "coins_clawed_back": self.coins_clawed_back,
            "grants": self.grants,
            "by_rule": dict(sorted(self.by_rule.items())),
            "users_capped_daily": len(self.capped_daily),
            "users_capped_monthly": len(self.capped_monthly),
            "fraud_holds": self.fraud_holds,
        }


def summarize(sim: Simulation) -> dict[str, Any]:
    """The summary of one simulated run (keys: ``SUMMARY_KEYS``)."""
    tally = _Tally()
    tally.dead_letters = len(sim.dead_letters)
    for effects in sim.effects:
        d = effects.decision
        if d is not None:
            tally.decision(d.user_vpa, d.outcome.value, (r.value for r in d.reasons))
        for g in effects.grants:
            tally.grant(g.kind.value, g.coins, ((r.rule_id, r.coins) for r in g.rules))
    return tally.summary()


def summary_of_outputs(
    decisions: Iterable[Mapping[str, Any]],
    grants: Iterable[Mapping[str, Any]],
    dead_letters: int,
) -> dict[str, Any]:
    """The same summary from the pipeline's output records (parsed JSON), each once."""
    tally = _Tally()
    tally.dead_letters = dead_letters
    for d in decisions:
        tally.decision(str(d["user_vpa"]), str(d["outcome"]), (str(r) for r in d["reasons"]))
    for g in grants:
        tally.grant(
            str(g["kind"]),
            int(g["coins"]),
            ((str(r["rule_id"]), int(r["coins"])) for r in g.get("rules", [])),
        )
    return tally.summary()


@dataclass
class Details:
    """What the report draws, beyond the summary."""

    #: (local day ISO, rule id) -> coins granted (GRANT records, by their event time)
    coins_by_day_rule: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: MCC category -> coins granted (merchant payments; "P2P" for people, "none" without MCC)
    coins_by_mcc: Counter[str] = field(default_factory=Counter)
    #: user -> coins granted minus clawed back (kept in memory only, never printed)
    per_user: Counter[str] = field(default_factory=Counter)
    #: local day ISO -> users capped that day (daily), and fraud holds per day
    capped_by_day: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    holds_by_day: Counter[str] = field(default_factory=Counter)
    capped_monthly_users: set[str] = field(default_factory=set)


def details(sim: Simulation, tz: ZoneInfo, mcc_of: Mapping[str, str]) -> Details:
    """Chart data from a run; ``mcc_of``: txn_id -> MCC category of the payment."""
    out = Details()
    for effects in sim.effects:
        d = effects.decision
        if d is not None:
            day = _day(d.event_time, tz)
            reasons = set(d.reasons)
            if Reason.DAILY_CAP in reasons:
                out.capped_by_day[day].add(d.user_vpa)
            if Reason.MONTHLY_CAP in reasons:
                out.capped_monthly_users.add(d.user_vpa)
            if d.outcome is Outcome.FRAUD_HOLD:
                out.holds_by_day[day] += 1
        for g in effects.grants:
            if g.kind is GrantKind.GRANT:
                out.per_user[g.user_vpa] += g.coins
                day = _day(g.event_time, tz)
                for r in g.rules:
                    out.coins_by_day_rule[(day, r.rule_id)] += r.coins
                out.coins_by_mcc[mcc_of.get(g.txn_id, "none")] += g.coins
            else:
                out.per_user[g.user_vpa] -= g.coins
    return out


def _day(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).date().isoformat()


@dataclass
class Run:
    """One rules file's run over the feed: the simulation, its summary."""

    rules: Rules
    sim: Simulation
    summary: dict[str, Any]


def run(messages: Iterable[bytes | None], rules: Rules) -> Run:
    sim = simulate(messages, rules)
    return Run(rules, sim, summarize(sim))


def tee(messages: Iterable[bytes | None], keep: list[bytes | None]) -> Iterator[bytes | None]:
    """Yield the messages, keeping each (for a second run over the same feed)."""
    for m in messages:
        keep.append(m)
        yield m
