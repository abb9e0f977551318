"""Per-user reward state and the effects of one event: ``(state, event) -> effects``.

State is a key-value map (a Faust table in the worker, a dict in tests and
replays). All records are keyed by the user so they live on the user's partition:

* ``<user>\\x1fH`` — the head: coins granted per recent day and month (cap
  room), the newest day seen, the fraud windows, cooldowns and holds
  (``rewards.fraud``), the txn ids recorded on the newest day, the days that
  have an index record, and ``last``, a copy of the previous event's other writes.
* ``<user>\\x1fT<txn_id>`` — one per SUCCESS event: dedupe marker, and for a
  payment what was granted, refunded and clawed back.
* ``<user>\\x1fX<day>`` — the txn ids recorded on one past day, so that day's
  records can be deleted when it falls behind the cap horizon: state per user
  stays bounded however long the stream runs.

``process``/``apply_flag`` only read; they return the writes in the order the
adapter must apply them, head first (a value of ``None`` deletes the key). If a
crash loses the tail of one event's writes, the head still marks the event done
and carries the lost records in ``last``, so the replayed event restores them
(``repair``) instead of acting twice. The adapter acknowledges outputs before it
applies writes, so a crash can repeat an output (same id) but never lose one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from rewards.calendar import day_and_month, month_of_day
from rewards.fraud import FraudState, Hit
from rewards.rulebook import RuleBook
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

SEP = "\x1f"
#: How far behind a user's newest event a payment may be and still earn.
#: Cap counters and payment records older than this are dropped so state stays
#: bounded; a later payment further back cannot be checked against its day's
#: cap and earns nothing, a refund of such a payment claws nothing back.
CAP_HORIZON_DAYS = 62

FRAUD_REASON = {
    FraudRule.VELOCITY: Reason.FRAUD_VELOCITY,
    FraudRule.SAME_PAYEE: Reason.FRAUD_SAME_PAYEE,
    FraudRule.CIRCULAR: Reason.FRAUD_CIRCULAR,
}


class StateReader(Protocol):
    def get(self, key: str) -> bytes | None: ...


def head_key(user: str) -> str:
    return f"{user}{SEP}H"


def txn_key(user: str, txn_id: str) -> str:
    return f"{user}{SEP}T{txn_id}"


def index_key(user: str, day: int) -> str:
    return f"{user}{SEP}X{day}"


@dataclass(slots=True)
class Head:
    days: dict[int, int] = field(default_factory=dict)
    months: dict[int, int] = field(default_factory=dict)
    newest_day: int = 0
    last_txn: str = ""
    last_writes: list[tuple[str, Any]] = field(default_factory=list)
    fraud: FraudState = field(default_factory=FraudState)
    today: list[str] = field(default_factory=list)
    indexed: list[int] = field(default_factory=list)

    @classmethod
    def load(cls, raw: bytes | None) -> Head:
        if raw is None:
            return cls()
        doc = orjson.loads(raw)
        return cls(
            days={int(k): v for k, v in doc["d"].items()},
            months={int(k): v for k, v in doc["m"].items()},
            newest_day=doc["n"],
            last_txn=doc["l"],
            last_writes=[(k, v) for k, v in doc["w"]],
            fraud=FraudState.from_doc(doc.get("f")),
            today=doc.get("t", []),
            indexed=doc.get("x", []),
        )

    def dump(self) -> bytes:
        doc: dict[str, Any] = {
            "d": {str(k): v for k, v in self.days.items()},
            "m": {str(k): v for k, v in self.months.items()},
            "n": self.newest_day,
            "l": self.last_txn,
            "w": self.last_writes,
            "t": self.today,
            "x": self.indexed,
        }
        if self.fraud.newest is not None or self.fraud.hold:
            doc["f"] = self.fraud.to_doc()
        return orjson.dumps(doc)

    def floor_day(self) -> int:
        return self.newest_day - CAP_HORIZON_DAYS


@dataclass(frozen=True, slots=True)
class Effects:
    """What one message does: a decision (none for a flag), alerts, grants, writes in order."""

    decision: Decision | None
    grants: tuple[CoinGrant, ...] = ()
    writes: tuple[tuple[str, bytes | None], ...] = ()
    alerts: tuple[FraudAlert, ...] = ()
    late: bool = False


class _Event:
    """One event's view of the user's state: reads see its own earlier writes."""

    def __init__(self, user: str, book: RuleBook, state: StateReader, head: Head) -> None:
        self.user, self.book, self.state, self.head = user, book, state, head
        self.writes: dict[str, Any] = {}
        self.grants: list[CoinGrant] = []
        self.alerts: list[FraudAlert] = []

    def read(self, key: str) -> Any:
        if key in self.writes:
            return self.writes[key]
        raw = self.state.get(key)
        return None if raw is None else orjson.loads(raw)

    def record(self, txn_id: str, doc: dict[str, Any]) -> None:
        """Write a new per-event record and index it under its day for expiry."""
        day = doc["d"]
        if day < self.head.floor_day():
            return  # beyond the horizon already: it would never be expired
        self.writes[txn_key(self.user, txn_id)] = doc
        if day == self.head.newest_day:
            self.head.today.append(txn_id)
            return
        key = index_key(self.user, day)
        self.writes[key] = [*(self.read(key) or []), txn_id]
        if day not in self.head.indexed:
            self.head.indexed.append(day)

    def advance(self, day: int) -> None:
        """Move the newest day forward: close today's index, expire what fell behind."""
        head = self.head
        if day <= head.newest_day:
            return
        if head.today:
            key = index_key(self.user, head.newest_day)
            self.writes[key] = [*(self.read(key) or []), *head.today]
            if head.newest_day not in head.indexed:
                head.indexed.append(head.newest_day)
            head.today = []
        head.newest_day = day
        floor = head.floor_day()
        floor_month = month_of_day(max(floor, 1))
        head.days = {d: c for d, c in head.days.items() if d >= floor}
        head.months = {m: c for m, c in head.months.items() if m >= floor_month}
        for old in [d for d in head.indexed if d < floor]:
            key = index_key(self.user, old)
            for txn_id in self.read(key) or []:
                self.writes[txn_key(self.user, txn_id)] = None
            self.writes[key] = None
            head.indexed.remove(old)

    def flag(self, hit: Hit) -> None:
        """Raise or extend a cooldown, hold its span, claw back what was granted there."""
        fraud = self.head.fraud
        alert, until, (start, end) = fraud.flag(self.book.fraud, hit)
        if alert:
            self.alerts.append(
                FraudAlert.model_construct(  # validated inputs: see ``_grant``
                    alert_id=alert_id_for(hit.trigger, hit.rule, self.user),
                    user_vpa=self.user,
                    rule=hit.rule,
                    event_time=from_ms(hit.t),
                    window_seconds=hit.window_ms // 1000,
                    txn_ids=list(hit.txn_ids),
                    cooldown_until=from_ms(until),
                )
            )
        for txn_id, payment in self.payments_in(start, end):
            key = txn_key(self.user, txn_id)
            left = payment["g"] - payment["c"]
            if left <= 0:
                continue
            payment["c"] += left
            payment["f"] = left
            self.writes[key] = payment
            # Fraud clawbacks give the cap room back, unlike refunds: the result
            # must not depend on whether a payment was decided before its flag.
            day = payment["d"]
            if day in self.head.days:
                self.head.days[day] = max(self.head.days[day] - left, 0)
            month = month_of_day(day)
            if month in self.head.months:
                self.head.months[month] = max(self.head.months[month] - left, 0)
            self.grants.append(
                _grant(
                    grant_id_for_fraud(txn_id),
                    GrantKind.CLAWBACK,
                    self.user,
                    left,
                    txn_id,
                    hit.trigger,
                    GrantReason.FRAUD,
                    self.book,
                    from_ms(payment["t"]),
                )
            )

    def payments_in(self, start: int, end: int) -> list[tuple[str, dict[str, Any]]]:
        """The user's payment records with event time in ``[start, end)``, oldest day first.

        Found through the day index (kept for expiry anyway), so fraud windows
        need not remember every payment's coins in the head.
        """
        head = self.head
        first = max(day_and_month(from_ms(start), self.book.tz)[0], head.floor_day())
        last = min(day_and_month(from_ms(max(end - 1, start)), self.book.tz)[0], head.newest_day)
        out = []
        for day in range(first, last + 1):
            if day == head.newest_day:
                ids = head.today
            elif day in head.indexed:
                ids = self.read(index_key(self.user, day)) or []
            else:
                continue
            for txn_id in ids:
                record = self.read(txn_key(self.user, txn_id))
                if record and record["k"] == "P" and start <= record.get("t", start - 1) < end:
                    out.append((txn_id, record))
        return out

    def effects(self, decision: Decision | None, event_id: str, late: bool = False) -> Effects:
        head = self.head
        head.fraud.prune(self.book.fraud)
        head.last_txn = event_id
        head.last_writes = list(self.writes.items())
        writes = ((head_key(self.user), head.dump()), *_encoded(head.last_writes))
        return Effects(decision, tuple(self.grants), writes, tuple(self.alerts), late)


def _encoded(writes: list[tuple[str, Any]]) -> tuple[tuple[str, bytes | None], ...]:
    return tuple((k, None if v is None else orjson.dumps(v)) for k, v in writes)


def process(txn: Transaction, book: RuleBook, state: StateReader, source: str = "") -> Effects:
    """Decide one valid event against the user's state; read-only.

    ``source`` (``topic:partition:offset`` of the feed message) is stored with
    the record so tools can tell a replay from a resend.
    """
    user = txn.payer_vpa
    if txn.status is not TxnStatus.SUCCESS:
        return Effects(_decision(txn, book, Outcome.IGNORED, 0, [Reason.NOT_SUCCESS]))

    head_raw = state.get(head_key(user))
    head = Head.load(head_raw)
    if state.get(txn_key(user, txn.txn_id)) is not None:
        return Effects(_decision(txn, book, Outcome.DUPLICATE, 0, [Reason.ALREADY_PROCESSED]))
    if head_raw is not None and head.last_txn == txn.txn_id:
        decision = _decision(txn, book, Outcome.DUPLICATE, 0, [Reason.ALREADY_PROCESSED])
        return Effects(decision, (), _encoded(head.last_writes))

    day, month = day_and_month(txn.event_time, book.tz)
    event = _Event(user, book, state, head)
    event.advance(day)
    if txn.kind is TxnKind.PAYMENT:
        return _pay(event, txn, day, month, source)
    return _refund(event, txn, day, source)


def apply_flag(flag: FraudFlag, book: RuleBook, state: StateReader) -> Effects:
    """Apply a flag raised elsewhere (the circular detector) to the flagged user."""
    user = flag.user_vpa
    head_raw = state.get(head_key(user))
    head = Head.load(head_raw)
    flag_id = f"flag:{flag.source}"
    if head_raw is not None and head.last_txn == flag_id:
        return Effects(None, (), _encoded(head.last_writes))
    event = _Event(user, book, state, head)
    for v in flag.violations:
        event.flag(Hit(v.rule, v.trigger_txn_id, v.t_ms, v.window_ms, v.txn_ids))
    return event.effects(None, flag_id)


def _pay(event: _Event, txn: Transaction, day: int, month: int, source: str) -> Effects:
    book, head = event.book, event.head
    fraud_on = book.fraud.enabled
    t = epoch_ms(txn.event_time)
    late = fraud_on and head.fraud.is_late(t, book.fraud)
    if fraud_on and not late:
        for hit in head.fraud.observe(book.fraud, txn.txn_id, t, txn.payee_vpa):
            event.flag(hit)
    held = head.fraud.held_by(t) if fraud_on else []

    earned = book.earn(txn)
    raw_coins = sum(c for _, c in earned)
    reasons: list[Reason] = []
    granted = 0
    if held:
        reasons.extend(FRAUD_REASON[rule] for rule in held)
    elif day < head.floor_day():
        reasons.append(Reason.BEYOND_HORIZON)
    elif not earned:
        reasons.append(Reason.NO_MATCHING_RULE)
    elif raw_coins == 0:
        reasons.append(Reason.ZERO_COINS)
    else:
        reasons.append(Reason.RULE_MATCHED)
        granted = raw_coins
        if book.daily_cap is not None:
            room = max(book.daily_cap - head.days.get(day, 0), 0)
            if room < granted:
                granted = room
                reasons.append(Reason.DAILY_CAP)
        if book.monthly_cap is not None:
            room = max(book.monthly_cap - head.months.get(month, 0), 0)
            if room < granted:
                granted = room
                reasons.append(Reason.MONTHLY_CAP)

    if granted > 0:
        head.days[day] = head.days.get(day, 0) + granted
        head.months[month] = head.months.get(month, 0) + granted
        event.grants.append(
            _grant(
                grant_id_for_payment(txn.txn_id),
                GrantKind.GRANT,
                txn.payer_vpa,
                granted,
                txn.txn_id,
                txn.txn_id,
                GrantReason.PAYMENT,
                book,
                txn.event_time,
                _split(earned, granted),
            )
        )
    record = {
        "k": "P",
        "d": day,
        "t": epoch_ms(txn.event_time),
        "a": txn.amount_paise,
        "g": granted,
        "r": 0,
        "c": 0,
        "s": source,
    }
    event.record(txn.txn_id, record)
    outcome = Outcome.GRANTED if granted > 0 else Outcome.NO_REWARD
    if held:
        outcome = Outcome.FRAUD_HOLD
    decision = _decision(txn, book, outcome, granted, reasons)
    return event.effects(decision, txn.txn_id, late)


def _refund(event: _Event, txn: Transaction, day: int, source: str) -> Effects:
    user, book = txn.payer_vpa, event.book
    original_id = txn.original_txn_id or ""
    payment = event.read(txn_key(user, original_id))
    clawed = 0
    if payment is None or payment.get("k") != "P":
        reasons = [Reason.UNKNOWN_PAYMENT]
    else:
        payment["r"] += txn.amount_paise
        granted, amount = payment["g"], payment["a"]
        if granted == 0:
            reasons = [Reason.UNREWARDED_PAYMENT]
        else:
            due = granted * min(payment["r"], amount) // amount
            clawed = max(due - payment["c"], 0)
            payment["c"] += clawed
            reasons = [Reason.REFUND_CLAWBACK if clawed else Reason.NOTHING_LEFT]
    event.record(txn.txn_id, {"k": "R", "d": day, "o": original_id, "c": clawed, "s": source})
    if payment is not None and payment.get("k") == "P":
        event.writes[txn_key(user, original_id)] = payment
    if clawed:
        event.grants.append(
            _grant(
                grant_id_for_refund(txn.txn_id),
                GrantKind.CLAWBACK,
                user,
                clawed,
                original_id,
                txn.txn_id,
                GrantReason.REFUND,
                book,
                txn.event_time,
            )
        )
    outcome = Outcome.CLAWED_BACK if clawed else Outcome.NO_REWARD
    return event.effects(_decision(txn, book, outcome, clawed, reasons), txn.txn_id)


def _grant(
    grant_id: str,
    kind: GrantKind,
    user: str,
    coins: int,
    txn_id: str,
    cause_txn_id: str,
    reason: GrantReason,
    book: RuleBook,
    event_time: Any,
    rules: list[RuleCoins] | None = None,
) -> CoinGrant:
    # Built from validated inputs only, so validation is skipped (``model_construct``):
    # it was a tenth of the core's time. tests/unit/test_outputs_valid.py checks
    # that every output of a simulated feed passes the contract's validation.
    return CoinGrant.model_construct(
        grant_id=grant_id,
        kind=kind,
        user_vpa=user,
        coins=coins,
        txn_id=txn_id,
        cause_txn_id=cause_txn_id,
        reason=reason,
        rules_version=book.version,
        rules=rules or [],
        event_time=event_time,
    )


def _split(earned: list[tuple[str, int]], granted: int) -> list[RuleCoins]:
    """Attribute the granted coins to rules in file order (caps cut the last ones)."""
    out: list[RuleCoins] = []
    left = granted
    for rule_id, coins in earned:
        take = min(coins, left)
        if take > 0:
            out.append(RuleCoins.model_construct(rule_id=rule_id, coins=take))
            left -= take
    return out


def _decision(
    txn: Transaction, book: RuleBook, outcome: Outcome, coins: int, reasons: list[Reason]
) -> Decision:
    return Decision.model_construct(  # validated inputs: see ``_grant``
        txn_id=txn.txn_id,
        user_vpa=txn.payer_vpa,
        outcome=outcome,
        coins=coins,
        reasons=reasons,
        rules_version=book.version,
        event_time=txn.event_time,
    )


class MemoryState(dict[str, bytes]):
    """The state as a plain dict: for tests, replays and benchmarks."""

    def apply(self, effects: Effects) -> None:
        for key, value in effects.writes:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value


def replay(txns: list[Transaction], book: RuleBook) -> tuple[list[Effects], MemoryState]:
    """Run events through the core in order, as one worker would (no circular flags)."""
    state = MemoryState()
    out = []
    for txn in txns:
        effects = process(txn, book, state)
        state.apply(effects)
        out.append(effects)
    return out, state
