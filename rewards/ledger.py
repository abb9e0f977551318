"""One user's rewards, event by event: ``(user state, event) -> effects``, in place.

The adapter loads a user's record once (``rewards.state.decode_user``), calls
``process``/``apply_flag`` for each of the user's events, mutating the
in-memory ``UserState``, and writes the record back once, whole
(``encode_user``), after the outputs were acknowledged. So a crash either
loses the batch's state change entirely (the events come again and are
decided again, with the same deterministic ids) or keeps it, with the replay
marks that make the repeated events no-ops:

* **replay marks**: ``source`` is the event's ``topic:partition:offset``. An
  offset at or below the user's mark for that ``topic:partition`` was decided
  already and its outputs are on the broker: ``Effects(None, replay=True)``,
  nothing emitted, nothing changed. Offsets of one path arrive in order.
* **resends**: a SUCCESS txn id already recorded for the user (from another
  source, or without one) is a ``DUPLICATE`` (``already_processed``); so is a
  resend of the user's last event when that left no record (beyond the horizon).

Cap counters and txn records more than ``CAP_HORIZON_DAYS`` behind the
user's newest event are dropped when the newest day advances, so state per
user is bounded however long the stream runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rewards.calendar import day_and_month_ms, month_of_day
from rewards.fraud import Hit
from rewards.rulebook import RuleBook
from rewards.state import SEP, Payment, Refund, UserState, parse_source
from rewards.versions import RuleVersions
from rewards.windows import epoch_ms, from_ms
from schemas.common import TxnKind, TxnStatus
from schemas.decision import Decision, Outcome, Reason
from schemas.flag import FraudFlag
from schemas.fraud_alert import FraudAlert, FraudRule, alert_id_for
from schemas.grant import (
    CoinGrant,
    GrantKind,
    GrantReason,
    RuleCoins,
    grant_id_for_fraud,
    grant_id_for_payment,
    grant_id_for_refund,
)
from schemas.transaction import Transaction
from schemas.trusted import constructor

__all__ = [
    "CAP_HORIZON_DAYS",
    "SEP",
    "Effects",
    "MemoryState",
    "apply_flag",
    "process",
    "replay",
]

#: How far behind a user's newest event a payment may be and still earn.
#: Cap counters and payment records older than this are dropped so state stays
#: bounded; a later payment further back cannot be checked against its day's
#: cap and earns nothing, a refund of such a payment claws nothing back.
CAP_HORIZON_DAYS = 62

#: One rules file, or the versions known (``rewards.versions``): each event is
#: decided by ``rules.at(event_time)``, the version in force at its time.
Rules = RuleBook | RuleVersions

# Enum members as module constants: looking one up on its class is a dict miss
# and a metaclass call in Python 3.11, per event.
_SUCCESS, _PAYMENT = TxnStatus.SUCCESS, TxnKind.PAYMENT
_GRANTED, _NO_REWARD, _FRAUD_HOLD = Outcome.GRANTED, Outcome.NO_REWARD, Outcome.FRAUD_HOLD
_IGNORED, _DUPLICATE, _CLAWED_BACK = Outcome.IGNORED, Outcome.DUPLICATE, Outcome.CLAWED_BACK
_GRANT, _CLAWBACK = GrantKind.GRANT, GrantKind.CLAWBACK
_ALREADY_PROCESSED = Reason.ALREADY_PROCESSED
_BEYOND_HORIZON = Reason.BEYOND_HORIZON
_DAILY_CAP = Reason.DAILY_CAP
_MONTHLY_CAP = Reason.MONTHLY_CAP
_NOTHING_LEFT = Reason.NOTHING_LEFT
_NOT_SUCCESS = Reason.NOT_SUCCESS
_NO_MATCHING_RULE = Reason.NO_MATCHING_RULE
_REFUND_CLAWBACK = Reason.REFUND_CLAWBACK
_RULE_MATCHED = Reason.RULE_MATCHED
_UNKNOWN_PAYMENT = Reason.UNKNOWN_PAYMENT
_UNREWARDED_PAYMENT = Reason.UNREWARDED_PAYMENT
_ZERO_COINS = Reason.ZERO_COINS

FRAUD_REASON = {
    FraudRule.VELOCITY: Reason.FRAUD_VELOCITY,
    FraudRule.SAME_PAYEE: Reason.FRAUD_SAME_PAYEE,
    FraudRule.CIRCULAR: Reason.FRAUD_CIRCULAR,
}


@dataclass(slots=True)
class Effects:
    """What one message does: a decision (none for a flag or a replay), grants, alerts.

    Read-only by convention (not ``frozen``: a frozen dataclass's ``__init__``
    sets each field through ``object.__setattr__``, twice the cost, per event).

    ``late``: a payment too old for the payer's fraud windows (decided, not
    windowed). ``replay``: the message was decided before (its source is at or
    below the user's mark); nothing is emitted for it again.
    """

    decision: Decision | None
    grants: tuple[CoinGrant, ...] = ()
    alerts: tuple[FraudAlert, ...] = ()
    late: bool = False
    replay: bool = False


REPLAY = Effects(None, replay=True)


def _replayed(user: UserState, source: str) -> bool:
    """Is ``source`` at or below the user's mark for its path? If not, mark it."""
    if not source:
        return False
    path, offset = parse_source(source)
    marks = user.marks
    if offset <= marks.get(path, -1):
        return True
    marks[path] = offset
    return False


class _Event:
    """One event's outputs as they are made, against the user's state."""

    __slots__ = ("alerts", "book", "grants", "rules", "state", "user")

    def __init__(self, user: str, book: RuleBook, state: UserState, rules: Rules) -> None:
        #: ``book``: the version deciding this event; ``rules``: every version, for
        #: the clawbacks of a flag (the version in force at its trigger's time)
        self.user, self.book, self.state, self.rules = user, book, state, rules
        self.grants: list[CoinGrant] = []
        self.alerts: list[FraudAlert] = []

    def record(self, txn_id: str, rec: Payment | Refund) -> None:
        """Keep a new txn record, unless it is beyond the horizon already."""
        if rec.day >= self.state.newest_day - CAP_HORIZON_DAYS:
            self.state.txns[txn_id] = rec
        else:
            self.state.forgot = True

    def flag(self, hit: Hit) -> None:
        """Raise or extend a cooldown, hold its span, claw back what was granted there."""
        state = self.state
        alert, until, (start, end) = state.fraud.flag(self.book.fraud, hit)
        if alert:
            self.alerts.append(
                _make_alert(  # validated inputs: see ``_grant``
                    {
                        "alert_id": alert_id_for(hit.trigger, hit.rule, self.user),
                        "user_vpa": self.user,
                        "rule": hit.rule,
                        "event_time": from_ms(hit.t),
                        "window_seconds": hit.window_ms // 1000,
                        "txn_ids": list(hit.txn_ids),
                        "cooldown_until": from_ms(until),
                    }
                )
            )
        for txn_id, payment in self.payments_in(start, end):
            left = payment.granted - payment.clawed
            if left <= 0:
                continue
            payment.clawed += left
            # Fraud clawbacks give the cap room back, unlike refunds: the result
            # must not depend on whether a payment was decided before its flag.
            day = payment.day
            if day in state.days:
                state.days[day] = max(state.days[day] - left, 0)
            month = month_of_day(day)
            if month in state.months:
                state.months[month] = max(state.months[month] - left, 0)
            self.grants.append(
                _grant(
                    grant_id_for_fraud(txn_id),
                    _CLAWBACK,
                    self.user,
                    left,
                    txn_id,
                    hit.trigger,
                    GrantReason.FRAUD,
                    self.rules.at_ms(hit.t),
                    from_ms(payment.t),
                )
            )

    def payments_in(self, start: int, end: int) -> list[tuple[str, Payment]]:
        """The user's payments with event time in ``[start, end)``, oldest day first.

        Within a day, in the order they were recorded.
        """
        state, tz = self.state, self.book.tz
        first = max(day_and_month_ms(start, tz)[0], state.newest_day - CAP_HORIZON_DAYS)
        last = min(day_and_month_ms(max(end - 1, start), tz)[0], state.newest_day)
        found = [
            (txn_id, rec)
            for txn_id, rec in state.txns.items()
            if type(rec) is Payment and first <= rec.day <= last and start <= rec.t < end
        ]
        found.sort(key=lambda item: item[1].day)  # stable: recorded order within a day
        return found

    def effects(self, decision: Decision | None, late: bool = False) -> Effects:
        fraud, cfg = self.state.fraud, self.book.fraud
        newest = fraud.newest  # ``prune`` has nothing to do unless (inlined: per event)
        if newest is not None and (
            fraud.cool or fraud.hold or (fraud.seen and fraud.seen[0][0] < newest - cfg.seen_ms)
        ):
            fraud.prune(cfg)
        return Effects(decision, tuple(self.grants), tuple(self.alerts), late)


def _advance(state: UserState, day: int) -> None:
    """Move the newest day forward; drop counters and records that fell behind."""
    if day <= state.newest_day:
        return
    state.newest_day = day
    floor = day - CAP_HORIZON_DAYS
    if state.days and min(state.days) < floor:
        state.days = {d: c for d, c in state.days.items() if d >= floor}
    if state.months:
        floor_month = month_of_day(max(floor, 1))
        if min(state.months) < floor_month:
            state.months = {m: c for m, c in state.months.items() if m >= floor_month}
    txns = state.txns
    if txns and any(rec.day < floor for rec in txns.values()):
        state.txns = {k: rec for k, rec in txns.items() if rec.day >= floor}
        state.forgot = True


def process(txn: Transaction, rules: Rules, user: UserState, source: str = "") -> Effects:
    """Decide one valid event of ``user`` (the payer's state), updating it in place.

    The version of ``rules`` in force at the event's time decides it: its rules
    and caps (counted over every coin of the day and month, whichever version
    granted it), its ``rules_version`` on the decision and the grants.
    ``source`` (``topic:partition:offset`` of the feed message) drives the
    replay marks; empty, there are none (tests, tools).
    """
    if source:  # the replay marks (``_replayed``, inlined: it runs per event)
        path, _, offset_text = source.rpartition(":")
        if ":" not in path:
            raise ValueError(f"not topic:partition:offset: {source!r}")
        offset = int(offset_text)
        marks = user.marks
        if offset <= marks.get(path, -1):
            return REPLAY
        marks[path] = offset
    book = rules.at(txn.event_time)
    if txn.status is not _SUCCESS:
        return Effects(_decision(txn, book, _IGNORED, 0, [_NOT_SUCCESS]))
    if txn.txn_id in user.txns or txn.txn_id == user.last_txn:
        return Effects(_decision(txn, book, _DUPLICATE, 0, [_ALREADY_PROCESSED]))

    t = epoch_ms(txn.event_time)
    day, month = day_and_month_ms(t, book.tz)
    _advance(user, day)
    user.last_txn = txn.txn_id
    event = _Event(txn.payer_vpa, book, user, rules)
    if txn.kind is _PAYMENT:
        return _pay(event, txn, t, day, month)
    return _refund(event, txn, day)


def apply_flag(flag: FraudFlag, rules: Rules, user: UserState) -> Effects:
    """Apply a flag raised elsewhere (the circular detector) to the flagged user.

    Its clawbacks carry the version in force at the trigger payment's time.
    """
    if _replayed(user, flag.source):
        return REPLAY
    user.last_txn = ""
    first_t = flag.violations[0].t_ms if flag.violations else 0
    event = _Event(flag.user_vpa, rules.at_ms(first_t), user, rules)
    for v in flag.violations:
        event.flag(Hit(v.rule, v.trigger_txn_id, v.t_ms, v.window_ms, v.txn_ids))
    return event.effects(None)


def _pay(event: _Event, txn: Transaction, t: int, day: int, month: int) -> Effects:
    book, state = event.book, event.state
    fraud = state.fraud
    cfg = book.fraud
    fraud_on = cfg.enabled
    late = fraud_on and fraud.newest is not None and t < fraud.newest - cfg.late_ms  # is_late
    if fraud_on and not late:
        for hit in fraud.observe(cfg, txn.txn_id, t, txn.payee_vpa):
            event.flag(hit)
    held = fraud.held_by(t) if fraud_on and fraud.hold else []

    earned = book.earn(txn)
    raw_coins = sum([c for _, c in earned])
    reasons: list[Reason] = []
    granted = 0
    if day < state.newest_day - CAP_HORIZON_DAYS:  # first: holds that old may be forgotten
        reasons.append(_BEYOND_HORIZON)
        held = []
    elif held:
        reasons.extend(FRAUD_REASON[rule] for rule in held)
    elif not earned:
        reasons.append(_NO_MATCHING_RULE)
    elif raw_coins == 0:
        reasons.append(_ZERO_COINS)
    else:
        reasons.append(_RULE_MATCHED)
        granted = raw_coins
        if book.daily_cap is not None:
            room = max(book.daily_cap - state.days.get(day, 0), 0)
            if room < granted:
                granted = room
                reasons.append(_DAILY_CAP)
        if book.monthly_cap is not None:
            room = max(book.monthly_cap - state.months.get(month, 0), 0)
            if room < granted:
                granted = room
                reasons.append(_MONTHLY_CAP)

    split: list[RuleCoins] | tuple[()] = ()
    if granted > 0:
        state.days[day] = state.days.get(day, 0) + granted
        state.months[month] = state.months.get(month, 0) + granted
        split = _split(earned, granted)
        event.grants.append(
            _grant(
                grant_id_for_payment(txn.txn_id),
                _GRANT,
                txn.payer_vpa,
                granted,
                txn.txn_id,
                txn.txn_id,
                GrantReason.PAYMENT,
                book,
                txn.event_time,
                split,
            )
        )
    event.record(txn.txn_id, Payment(day, t, txn.amount_paise, granted, 0, 0, split))
    outcome = _GRANTED if granted > 0 else _NO_REWARD
    if held:
        outcome = _FRAUD_HOLD
    return event.effects(_decision(txn, book, outcome, granted, reasons), late)


def _refund(event: _Event, txn: Transaction, day: int) -> Effects:
    user, book = txn.payer_vpa, event.book
    original_id = txn.original_txn_id or ""
    payment = event.state.txns.get(original_id)
    clawed = 0
    if type(payment) is not Payment:
        reasons = [_UNKNOWN_PAYMENT]
    else:
        payment.refunded += txn.amount_paise
        granted, amount = payment.granted, payment.amount
        if granted == 0:
            reasons = [_UNREWARDED_PAYMENT]
        else:
            due = granted * min(payment.refunded, amount) // amount
            clawed = max(due - payment.clawed, 0)
            payment.clawed += clawed
            reasons = [_REFUND_CLAWBACK if clawed else _NOTHING_LEFT]
    # A refund of a payment still in the state is kept as long as the payment
    # (its day at least the payment's), however old its own time: a resend of
    # it stays a DUPLICATE and never counts the refunded amount twice.
    kept_day = day if type(payment) is not Payment else max(day, payment.day)
    event.record(txn.txn_id, Refund(kept_day, original_id, clawed))
    if clawed:
        event.grants.append(
            _grant(
                grant_id_for_refund(txn.txn_id),
                _CLAWBACK,
                user,
                clawed,
                original_id,
                txn.txn_id,
                GrantReason.REFUND,
                book,
                txn.event_time,
            )
        )
    outcome = _CLAWED_BACK if clawed else _NO_REWARD
    return event.effects(_decision(txn, book, outcome, clawed, reasons))


# Built from validated inputs only, so validation is skipped (``schemas.trusted``).
_make_decision = constructor(Decision)
_make_grant = constructor(CoinGrant)
_make_alert = constructor(FraudAlert)
_make_rule_coins = constructor(RuleCoins)


def _grant(
    grant_id: str,
    kind: GrantKind,
    user: str,
    coins: int,
    txn_id: str,
    cause_txn_id: str,
    reason: GrantReason,
    book: RuleBook,
    event_time: datetime,
    rules: list[RuleCoins] | None = None,
) -> CoinGrant:
    # Built from validated inputs only, so validation is skipped (``schemas.trusted``).
    # tests/unit/test_outputs_valid.py checks that every output of a simulated
    # feed passes the contract's validation.
    return _make_grant(
        {
            "grant_id": grant_id,
            "kind": kind,
            "user_vpa": user,
            "coins": coins,
            "txn_id": txn_id,
            "cause_txn_id": cause_txn_id,
            "reason": reason,
            "rules_version": book.version,
            "rules": rules or [],
            "event_time": event_time,
        }
    )


def _split(earned: list[tuple[str, int]], granted: int) -> list[RuleCoins]:
    """Attribute the granted coins to rules in file order (caps cut the last ones)."""
    out: list[RuleCoins] = []
    left = granted
    for rule_id, coins in earned:
        take = min(coins, left)
        if take > 0:
            out.append(_make_rule_coins({"rule_id": rule_id, "coins": take}))
            left -= take
    return out


def _decision(
    txn: Transaction, book: RuleBook, outcome: Outcome, coins: int, reasons: list[Reason]
) -> Decision:
    return _make_decision(  # validated inputs: see ``_grant``
        {
            "txn_id": txn.txn_id,
            "user_vpa": txn.payer_vpa,
            "outcome": outcome,
            "coins": coins,
            "reasons": reasons,
            "rules_version": book.version,
            "event_time": txn.event_time,
        }
    )


class MemoryState(dict[str, UserState]):
    """Every user's state in a plain dict keyed by VPA: for tests, replays and benchmarks."""

    def user(self, vpa: str) -> UserState:
        """The user's state, created empty on first use."""
        state = self.get(vpa)
        if state is None:
            state = self[vpa] = UserState()
        return state


def replay(txns: list[Transaction], rules: Rules) -> tuple[list[Effects], MemoryState]:
    """Run events through the core in order, as one worker would (no circular flags)."""
    state = MemoryState()
    out = [process(txn, rules, state.user(txn.payer_vpa)) for txn in txns]
    return out, state
