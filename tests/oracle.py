"""An independent, deliberately naive reading of the reward and fraud specs.

No code shared with ``rewards.ledger``/``rewards.fraud``: plain lists, caps
recomputed by summing every grant so far, refunds by scanning, every fraud
window recounted from scratch before and after each payment. Slow and
obviously right, it is the yardstick for the core (unit properties) and for a
live worker (integration).

Versions of the rules (``expected(..., versions=[...])``): each event is
judged by the version with the latest ``effective_from`` not after its time,
the first version when none; a fraud clawback by the version in force at its
trigger payment's time. Caps sum every grant of the day or month, whatever
version made it. Fraud settings and the timezone are the first version's.

Circular flags are applied the moment their payment is seen; the worker
applies them a little later, on the other user's partition. Fraud clawbacks
reach over the whole held span and give cap room back, so the coins per user
come out the same either way (docs/fraud.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.rules import RulesFile
from schemas.transaction import Transaction


@dataclass(frozen=True)
class ExpectedGrant:
    grant_id: str
    kind: str  # GRANT | CLAWBACK
    user_vpa: str
    coins: int
    txn_id: str
    cause_txn_id: str
    rules: tuple[tuple[str, int], ...]
    rules_version: str = ""


@dataclass(frozen=True)
class ExpectedDecision:
    txn_id: str
    user_vpa: str
    outcome: str
    coins: int
    grants: tuple[ExpectedGrant, ...] = ()
    #: Fraud effects this event caused, possibly on other users.
    fraud_grants: tuple[ExpectedGrant, ...] = ()
    alerts: tuple[tuple[str, str, str], ...] = ()  # (user, rule, trigger txn)
    rules_version: str = ""


@dataclass
class _Payment:
    amount: int
    granted: int
    refunded: int = 0
    clawed: int = 0


@dataclass
class _User:
    succeeded: set[str] = field(default_factory=set)
    payments: dict[str, _Payment] = field(default_factory=dict)
    grants: list[tuple[object, object, int]] = field(default_factory=list)  # (day, month, coins)
    newest: int | None = None
    windowed: list[tuple[int, str, str]] = field(default_factory=list)  # (ms, txn, payee)
    times: dict[str, tuple[int, object, object]] = field(default_factory=dict)  # txn -> ms, day, m
    cooldowns: list[tuple[str, int, int]] = field(default_factory=list)  # (rule, start, end)
    holds: list[tuple[str, int, int]] = field(default_factory=list)


def _ms(txn: Transaction) -> int:
    return int(txn.event_time.timestamp()) * 1000 + txn.event_time.microsecond // 1000


def _count(pool: list[tuple[int, str, str]], end: int, w: int, payee: str | None) -> int:
    return sum(1 for t, _, p in pool if end - w <= t <= end and payee in (None, p))


def _broken(pool: list[tuple[int, str, str]], end: int, w: int, end_payer: str) -> bool:
    """Is some payment the other way round inside the window ending at ``end``?"""
    return any(end - w <= t <= end and payer != end_payer for t, _, payer in pool)


def _in_force(at: datetime, first: RulesFile, versions: Sequence[RulesFile]) -> RulesFile:
    """Scan every version: the latest effective_from not after ``at``; else the first."""
    started = [v for v in (first, *versions) if v.effective_from and v.effective_from <= at]
    latest = max((v.effective_from for v in started if v.effective_from), default=None)
    return next((v for v in started if v.effective_from == latest), first)


class _Fraud:
    """Naive fraud: recount every window, keep every interval, scan everything."""

    def __init__(
        self, rules: RulesFile, users: dict[str, _User], versions: Sequence[RulesFile] = ()
    ) -> None:
        f = rules.fraud
        self.first, self.versions = rules, versions
        self.users = users
        self.cd = f.cooldown_seconds * 1000
        self.local = [
            (name, lim.max_payments, lim.window_seconds * 1000)
            for name, lim in (("velocity", f.velocity), ("same_payee", f.same_payee))
            if lim is not None
        ]
        self.circ = f.circular.window_seconds * 1000 if f.circular else None
        # Late for the payer's windows: older than the newest by more than the
        # allowance, by default the largest payer window; the pair's windows
        # judge lateness on their own, by default against the circular window.
        lateness = f.allowed_lateness_seconds
        local_default = max((w for _, _, w in self.local), default=0)
        self.late = local_default if lateness is None else lateness * 1000
        self.pair_late = self.circ if lateness is None else lateness * 1000
        self.on = bool(self.local or self.circ)
        self.pairs: dict[frozenset[str], list[tuple[int, str, str]]] = {}
        self.pair_newest: dict[frozenset[str], int] = {}
        self.grants: list[ExpectedGrant] = []
        self.alerts: list[tuple[str, str, str]] = []

    def local_hits(self, user: _User, txn: Transaction) -> list[tuple[str, str, int, int]]:
        t = _ms(txn)
        if user.newest is not None and t < user.newest - self.late:
            return []  # late
        before = list(user.windowed)
        user.windowed.append((t, txn.txn_id, txn.payee_vpa))
        user.newest = t if user.newest is None else max(user.newest, t)
        hits = []
        for rule, limit, w in self.local:
            for end_t, end_txn, end_payee in user.windowed:
                if rule == "same_payee" and end_payee != txn.payee_vpa:
                    continue

                payee = None if rule == "velocity" else end_payee
                after = _count(user.windowed, end_t, w, payee)
                if end_txn == txn.txn_id:
                    if after > limit:
                        hits.append((rule, end_txn, end_t, w))
                elif _count(before, end_t, w, payee) <= limit < after:
                    hits.append((rule, end_txn, end_t, w))
        return hits

    def pair_hits(self, txn: Transaction) -> list[tuple[str, str, str, int]]:
        """(payer, payee, trigger txn, t) of every newly broken circular window."""
        if self.circ is None or txn.payer_vpa == txn.payee_vpa:
            return []
        key = frozenset((txn.payer_vpa, txn.payee_vpa))
        pool = self.pairs.setdefault(key, [])
        if any(x == txn.txn_id for _, x, _ in pool):
            return []
        t, w = _ms(txn), self.circ
        newest = self.pair_newest.get(key)
        if newest is not None and t < newest - (self.pair_late or 0):
            return []
        before = list(pool)
        pool.append((t, txn.txn_id, txn.payer_vpa))
        self.pair_newest[key] = t if newest is None else max(newest, t)
        hits = []
        for end_t, end_txn, end_payer in pool:
            now, then = _broken(pool, end_t, w, end_payer), _broken(before, end_t, w, end_payer)
            if now and (end_txn == txn.txn_id or not then):
                end_payee = next(u for u in key if u != end_payer)
                hits.append((end_payer, end_payee, end_txn, end_t))
        return hits

    def flag(self, user_id: str, rule: str, trigger: str, t: int, w: int) -> None:
        user = self.users.setdefault(user_id, _User())
        covered = any(r == rule and s <= t < e for r, s, e in user.cooldowns)
        if not covered:
            self.alerts.append((user_id, rule, trigger))
        if self.cd:
            user.cooldowns.append((rule, t, t + self.cd))
        user.holds.append((rule, t - w, max(t + self.cd, t + 1)))
        for txn_id, payment in user.payments.items():
            left = payment.granted - payment.clawed
            t_p, day, month = user.times[txn_id]
            if left > 0 and self.held(user, t_p):
                payment.clawed += left
                user.grants.append((day, month, -left))
                at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=t)
                version = _in_force(at, self.first, self.versions).version
                self.grants.append(
                    ExpectedGrant(
                        f"{txn_id}:fraud-clawback",
                        "CLAWBACK",
                        user_id,
                        left,
                        txn_id,
                        trigger,
                        (),
                        version,
                    )
                )

    def held(self, user: _User, t: int) -> list[str]:
        return sorted({r for r, s, e in user.holds if s <= t < e})


def _rule_coins(txn: Transaction, rules: RulesFile) -> list[tuple[str, int]]:
    out = []
    for rule in rules.rules:
        m = rule.match
        if m.payee_kind is not None and txn.payee_kind != m.payee_kind:
            continue
        if m.mcc_in is not None and txn.mcc not in m.mcc_in:
            continue
        if m.min_amount_paise is not None and txn.amount_paise < m.min_amount_paise:
            continue
        if m.max_amount_paise is not None and txn.amount_paise > m.max_amount_paise:
            continue
        if m.active_from is not None and not txn.event_time >= m.active_from:
            continue
        if m.active_until is not None and not txn.event_time < m.active_until:
            continue
        coins = txn.amount_paise * rule.reward.bps // 1_000_000 + rule.reward.flat_coins
        if rule.reward.max_coins is not None:
            coins = min(coins, rule.reward.max_coins)
        out.append((rule.id, coins))
    return out


def expected(
    txns: Iterable[Transaction], rules: RulesFile, versions: Sequence[RulesFile] = ()
) -> list[ExpectedDecision]:
    """What each event, in this order, must decide and emit.

    ``rules`` is the first version; ``versions`` the later ones, in any order.
    """
    out: list[ExpectedDecision] = []
    users: dict[str, _User] = {}
    fraud = _Fraud(rules, users, versions)
    for txn in txns:
        grants_before, alerts_before = len(fraud.grants), len(fraud.alerts)
        version = _in_force(txn.event_time, rules, versions)
        decision = _decide(txn, version, users, fraud)
        if txn.kind == "PAYMENT" and txn.status == "SUCCESS":
            for payer, payee, trigger, t in fraud.pair_hits(txn):
                for flagged in (payer, payee):
                    fraud.flag(flagged, "circular", trigger, t, fraud.circ or 0)
        out.append(
            ExpectedDecision(
                decision.txn_id,
                decision.user_vpa,
                decision.outcome,
                decision.coins,
                decision.grants,
                tuple(fraud.grants[grants_before:]),
                tuple(fraud.alerts[alerts_before:]),
                version.version,
            )
        )
    return out


def _decide(
    txn: Transaction, rules: RulesFile, users: dict[str, _User], fraud: _Fraud
) -> ExpectedDecision:
    tz = ZoneInfo(fraud.first.timezone)
    user_id = txn.payer_vpa
    user = users.setdefault(user_id, _User())
    if txn.status != "SUCCESS":
        return ExpectedDecision(txn.txn_id, user_id, "IGNORED", 0)
    if txn.txn_id in user.succeeded:
        return ExpectedDecision(txn.txn_id, user_id, "DUPLICATE", 0)
    user.succeeded.add(txn.txn_id)
    local = txn.event_time.astimezone(tz)
    day, month = local.date(), (local.year, local.month)
    if txn.kind == "PAYMENT":
        user.times[txn.txn_id] = (_ms(txn), day, month)
        if fraud.on:
            for rule, trigger, t, w in fraud.local_hits(user, txn):
                fraud.flag(user_id, rule, trigger, t, w)
            if fraud.held(user, _ms(txn)):
                user.payments[txn.txn_id] = _Payment(txn.amount_paise, 0)
                return ExpectedDecision(txn.txn_id, user_id, "FRAUD_HOLD", 0)
        earned = _rule_coins(txn, rules)
        coins = sum(c for _, c in earned)
        daily = rules.limits.daily_coins_per_user
        monthly = rules.limits.monthly_coins_per_user
        if daily is not None:
            used = sum(c for d, _, c in user.grants if d == day)
            coins = min(coins, max(0, daily - used))
        if monthly is not None:
            used = sum(c for _, m, c in user.grants if m == month)
            coins = min(coins, max(0, monthly - used))
        user.payments[txn.txn_id] = _Payment(txn.amount_paise, coins)
        if coins <= 0:
            return ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0)
        user.grants.append((day, month, coins))
        split, left = [], coins
        for rule_id, c in earned:
            if min(c, left) > 0:
                split.append((rule_id, min(c, left)))
                left -= min(c, left)
        grant = ExpectedGrant(
            f"{txn.txn_id}:grant",
            "GRANT",
            user_id,
            coins,
            txn.txn_id,
            txn.txn_id,
            tuple(split),
            rules.version,
        )
        return ExpectedDecision(txn.txn_id, user_id, "GRANTED", coins, (grant,))
    # A SUCCESS REFUND.
    original = user.payments.get(txn.original_txn_id or "")
    if original is None:
        return ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0)
    original.refunded += txn.amount_paise
    due = original.granted * min(original.refunded, original.amount) // original.amount
    claw = due - original.clawed
    if claw <= 0:
        return ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0)
    original.clawed += claw
    grant = ExpectedGrant(
        f"{txn.txn_id}:clawback",
        "CLAWBACK",
        user_id,
        claw,
        txn.original_txn_id or "",
        txn.txn_id,
        (),
        rules.version,
    )
    return ExpectedDecision(txn.txn_id, user_id, "CLAWED_BACK", claw, (grant,))


def expected_balances(decisions: Iterable[ExpectedDecision]) -> dict[str, int]:
    """Coins granted minus coins clawed back, per user."""
    balances: dict[str, int] = {}
    for decision in decisions:
        for grant in (*decision.grants, *decision.fraud_grants):
            sign = 1 if grant.kind == "GRANT" else -1
            balances[grant.user_vpa] = balances.get(grant.user_vpa, 0) + sign * grant.coins
    return balances
