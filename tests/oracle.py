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

The state horizon (docs/contracts.md, "The state horizon") is modelled as the
contract words it: the user's newest day is the latest local day of a
non-duplicate SUCCESS event; a payment more than ``HORIZON_DAYS`` days behind
it earns nothing (``beyond_state_horizon``); records (dedupe markers,
refundable payments) older than that are forgotten, so a refund of such a
payment finds nothing and a resend of it is decided afresh. The one exception
the core keeps: a resend right after the user's last SUCCESS event is a
duplicate even when that event left no record. Each decision's ``reasons`` are
derived from the contract's table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from schemas.rules import RulesFile
from schemas.transaction import Transaction

#: docs/contracts.md: ``CAP_HORIZON_DAYS`` (not imported: the oracle shares no code).
HORIZON_DAYS = 62


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
    #: The decision's reason codes; for FRAUD_HOLD sorted (the core lists the held rules).
    reasons: tuple[str, ...] = ()
    rules_version: str = ""


@dataclass
class _Payment:
    amount: int
    granted: int
    refunded: int = 0
    clawed: int = 0
    #: The GRANT's coins per rule.
    rules: tuple[tuple[str, int], ...] = ()


@dataclass
class _User:
    #: txn id -> local day of every remembered SUCCESS (within the horizon).
    records: dict[str, date] = field(default_factory=dict)
    payments: dict[str, _Payment] = field(default_factory=dict)
    newest_day: date | None = None
    #: The txn id of the last non-duplicate SUCCESS ("" after a circular flag).
    last: str = ""
    grants: list[tuple[object, object, int]] = field(default_factory=list)  # (day, month, coins)
    newest: int | None = None
    windowed: list[tuple[int, str, str]] = field(default_factory=list)  # (ms, txn, payee)
    times: dict[str, tuple[int, object, object]] = field(default_factory=dict)  # txn -> ms, day, m
    cooldowns: list[tuple[str, int, int]] = field(default_factory=list)  # (rule, start, end)
    holds: list[tuple[str, int, int]] = field(default_factory=list)
    #: Was any SUCCESS of the user forgotten, or never remembered (beyond the horizon)?
    forgot: bool = False


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
        # In event-time order: the earliest broken window flags first (its cooldown
        # may then cover a later one that a late payment broke at the same time).
        return sorted(
            hits,
            key=lambda h: (self.local.index(next(x for x in self.local if x[0] == h[0])), h[2]),
        )

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
        if rule == "circular":
            user.last = ""  # a flag applied to the user ends the "last event" resend rule
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
    return _run(txns, rules, versions)[0]


def _run(
    txns: Iterable[Transaction], rules: RulesFile, versions: Sequence[RulesFile] = ()
) -> tuple[list[ExpectedDecision], dict[str, _User]]:
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
                decision.reasons,
                version.version,
            )
        )
    return out, users


def _decide(
    txn: Transaction, rules: RulesFile, users: dict[str, _User], fraud: _Fraud
) -> ExpectedDecision:
    tz = ZoneInfo(fraud.first.timezone)
    user_id = txn.payer_vpa
    user = users.setdefault(user_id, _User())

    def decided(
        outcome: str, coins: int, *reasons: str, grant: ExpectedGrant | None = None
    ) -> ExpectedDecision:
        grants = (grant,) if grant is not None else ()
        return ExpectedDecision(txn.txn_id, user_id, outcome, coins, grants, reasons=reasons)

    if txn.status != "SUCCESS":
        return decided("IGNORED", 0, "status_not_success")
    if txn.txn_id in user.records or txn.txn_id == user.last:
        return decided("DUPLICATE", 0, "already_processed")
    local = txn.event_time.astimezone(tz)
    day, month = local.date(), (local.year, local.month)
    if user.newest_day is None or day > user.newest_day:
        user.newest_day = day
        floor = day.toordinal() - HORIZON_DAYS
        kept = {k: d for k, d in user.records.items() if d.toordinal() >= floor}
        user.forgot |= len(kept) < len(user.records)
        user.records = kept
        user.payments = {k: p for k, p in user.payments.items() if k in user.records}
    user.last = txn.txn_id
    within = day.toordinal() >= user.newest_day.toordinal() - HORIZON_DAYS

    def remember(payment: _Payment | None = None) -> None:
        if not within:
            user.forgot = True
            return
        user.records[txn.txn_id] = day
        if payment is not None:
            user.payments[txn.txn_id] = payment

    if txn.kind == "PAYMENT":
        user.times[txn.txn_id] = (_ms(txn), day, month)
        if fraud.on:
            for rule, trigger, t, w in fraud.local_hits(user, txn):
                fraud.flag(user_id, rule, trigger, t, w)
        if not within:  # before the holds (docs/contracts.md, "The state horizon")
            user.forgot = True
            return decided("NO_REWARD", 0, "beyond_state_horizon")
        if fraud.on:
            held = fraud.held(user, _ms(txn))
            if held:
                remember(_Payment(txn.amount_paise, 0))
                return decided("FRAUD_HOLD", 0, *(f"fraud_{r}" for r in held))
        earned = _rule_coins(txn, rules)
        coins = sum(c for _, c in earned)
        if not earned:
            remember(_Payment(txn.amount_paise, 0))
            return decided("NO_REWARD", 0, "no_matching_rule")
        if coins == 0:
            remember(_Payment(txn.amount_paise, 0))
            return decided("NO_REWARD", 0, "zero_coins")
        reasons = ["rule_matched"]
        daily = rules.limits.daily_coins_per_user
        monthly = rules.limits.monthly_coins_per_user
        if daily is not None:
            room = max(0, daily - sum(c for d, _, c in user.grants if d == day))
            if room < coins:
                coins = room
                reasons.append("daily_cap")
        if monthly is not None:
            room = max(0, monthly - sum(c for _, m, c in user.grants if m == month))
            if room < coins:
                coins = room
                reasons.append("monthly_cap")
        if coins <= 0:
            remember(_Payment(txn.amount_paise, 0))
            return decided("NO_REWARD", 0, *reasons)
        user.grants.append((day, month, coins))
        split, left = [], coins
        for rule_id, c in earned:
            if min(c, left) > 0:
                split.append((rule_id, min(c, left)))
                left -= min(c, left)
        remember(_Payment(txn.amount_paise, coins, rules=tuple(split)))
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
        return decided("GRANTED", coins, *reasons, grant=grant)
    # A SUCCESS REFUND.
    original = user.payments.get(txn.original_txn_id or "")
    if original is None:
        remember()
        return decided("NO_REWARD", 0, "unknown_payment")
    # Remembered as long as the payment it refunds, however old its own day.
    user.records[txn.txn_id] = max(day, user.records[txn.original_txn_id or ""])
    original.refunded += txn.amount_paise
    if original.granted == 0:
        return decided("NO_REWARD", 0, "unrewarded_payment")
    due = original.granted * min(original.refunded, original.amount) // original.amount
    claw = due - original.clawed
    if claw <= 0:
        return decided("NO_REWARD", 0, "nothing_left_to_claw_back")
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
    return decided("CLAWED_BACK", claw, "refund_clawback", grant=grant)


def expected_balances(decisions: Iterable[ExpectedDecision]) -> dict[str, int]:
    """Coins granted minus coins clawed back, per user."""
    balances: dict[str, int] = {}
    for decision in decisions:
        for grant in (*decision.grants, *decision.fraud_grants):
            sign = 1 if grant.kind == "GRANT" else -1
            balances[grant.user_vpa] = balances.get(grant.user_vpa, 0) + sign * grant.coins
    return balances


# --------------------------------------------------------------------------- the API's answers


class Accounts:
    """What the per-user API must answer after ``txns``, read off the naive model.

    ``rewards(vpa, at)`` and ``payment(vpa, txn_id)`` give the JSON documents
    of ``GET /v1/users/{vpa}/rewards?at=`` and ``/payments/{txn_id}`` (None:
    404), docs/contracts.md.
    """

    def __init__(self, txns: Iterable[Transaction], rules: RulesFile) -> None:
        self.rules = rules
        self.tz = ZoneInfo(rules.timezone)
        _, self.users = _run(txns, rules)

    def _holds(self, user: _User, t: int) -> tuple[list[str], int | None]:
        """Rules whose (merged) holds cover ``t``, and the latest end of those spans."""
        rules, until = [], None
        for rule in sorted({r for r, _, _ in user.holds}):
            spans = [(s, e) for r, s, e in user.holds if r == rule and e > s]
            cover = [(s, e) for s, e in spans if s <= t < e]
            if not cover:
                continue
            lo, hi = min(s for s, _ in cover), max(e for _, e in cover)
            grown = True
            while grown:  # spans that overlap or touch merge, like intervals on paper
                grown = False
                for s, e in spans:
                    if s <= hi and e >= lo and (s < lo or e > hi):
                        lo, hi, grown = min(lo, s), max(hi, e), True
            rules.append(rule)
            until = hi if until is None else max(until, hi)
        return rules, until

    def _time(self, ms: int) -> str:
        from datetime import UTC, datetime

        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.tz).isoformat()

    def rewards(self, vpa: str, at: datetime) -> dict[str, object]:
        user = self.users.get(vpa)
        local = at.astimezone(self.tz)
        day, month = local.date(), (local.year, local.month)
        grants = user.grants if user else []
        on_day = sum(c for d, _, c in grants if d == day)
        in_month = sum(c for _, m, c in grants if m == month)
        daily = self.rules.limits.daily_coins_per_user
        monthly = self.rules.limits.monthly_coins_per_user
        at_ms = int(at.timestamp()) * 1000 + at.microsecond // 1000
        held, until = self._holds(user, at_ms) if user else ([], None)
        times = [user.times[x][0] for x in user.payments] if user else []
        return {
            "user_vpa": vpa,
            "known": user is not None,
            "rules_version": self.rules.version,
            "at": local.isoformat(),
            "day": {
                "date": day.isoformat(),
                "coins_granted": on_day,
                "cap": daily,
                "room": None if daily is None else max(0, daily - on_day),
            },
            "month": {
                "month": f"{month[0]:04d}-{month[1]:02d}",
                "coins_granted": in_month,
                "cap": monthly,
                "room": None if monthly is None else max(0, monthly - in_month),
            },
            "hold": {
                "active": bool(held),
                "until": None if until is None else self._time(until),
                "rules": held,
            },
            "newest_event_time": self._time(max(times)) if times else None,
        }

    def not_found(self, vpa: str, txn_id: str) -> str | None:
        """The 404 ``reason`` for a payment the state does not hold (None: it does)."""
        user = self.users.get(vpa)
        if user is None:
            return "unknown_user"
        if txn_id in user.payments:
            return None
        if txn_id in user.records:
            return "not_a_payment"
        return "not_in_state" if user.forgot else "never_seen"

    def payment(self, vpa: str, txn_id: str) -> dict[str, object] | None:
        user = self.users.get(vpa)
        if user is None or txn_id not in user.payments:
            return None
        p = user.payments[txn_id]
        t = user.times[txn_id][0]
        held, _ = self._holds(user, t)
        outcome = "GRANTED" if p.granted > 0 else ("FRAUD_HOLD" if held else "NO_REWARD")
        return {
            "txn_id": txn_id,
            "user_vpa": vpa,
            "outcome": outcome,
            "amount_paise": p.amount,
            "refunded_paise": p.refunded,
            "coins_granted": p.granted,
            "coins_clawed_back": p.clawed,
            "rules": [{"rule_id": r, "coins": c} for r, c in p.rules],
            "hold_rules": held,
            "event_time": self._time(t),
        }
