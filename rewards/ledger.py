"""Per-user reward state and the decision for one event: ``(state, event) -> effects``.

State is a key-value map (a Faust table in the worker, a dict in tests and
replays). Two kinds of record, both keyed by the user so they live on the
user's partition:

* ``<user>\\x1fH`` — the head: coins granted per recent day and month (cap
  room), the newest day seen, and ``last``, a copy of the previous event's
  other writes.
* ``<user>\\x1fT<txn_id>`` — one per SUCCESS event: dedupe marker, and for a
  payment what was granted, refunded and clawed back.

``process`` only reads; it returns the writes in the order the adapter must
apply them, head first. If a crash loses the tail of one event's writes, the
head still marks the event done and carries the lost records in ``last``, so
the replayed event is a DUPLICATE that restores them (``repair``) instead of a
second grant. The adapter acknowledges outputs before it applies writes, so a
crash can repeat an output (same grant_id) but never lose one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from rewards.calendar import day_and_month, month_of_day
from rewards.rulebook import RuleBook
from schemas.common import TxnKind, TxnStatus
from schemas.decision import Decision, Outcome, Reason
from schemas.grant import (
    CoinGrant,
    GrantKind,
    GrantReason,
    RuleCoins,
    grant_id_for_payment,
    grant_id_for_refund,
)
from schemas.transaction import Transaction

SEP = "\x1f"
#: How far behind a user's newest event a payment may be and still earn.
#: Cap counters older than this are pruned so the head stays small; a later
#: payment further back cannot be checked against its day's cap and earns nothing.
CAP_HORIZON_DAYS = 62


class StateReader(Protocol):
    def get(self, key: str) -> bytes | None: ...


def head_key(user: str) -> str:
    return f"{user}{SEP}H"


def txn_key(user: str, txn_id: str) -> str:
    return f"{user}{SEP}T{txn_id}"


@dataclass(slots=True)
class Head:
    days: dict[int, int] = field(default_factory=dict)
    months: dict[int, int] = field(default_factory=dict)
    newest_day: int = 0
    last_txn: str = ""
    last_writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

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
        )

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "d": {str(k): v for k, v in self.days.items()},
                "m": {str(k): v for k, v in self.months.items()},
                "n": self.newest_day,
                "l": self.last_txn,
                "w": self.last_writes,
            }
        )

    def floor_day(self) -> int:
        return self.newest_day - CAP_HORIZON_DAYS

    def see(self, day: int) -> None:
        """Advance the newest day and prune counters that fell behind the horizon."""
        if day <= self.newest_day:
            return
        self.newest_day = day
        floor = self.floor_day()
        floor_month = month_of_day(max(floor, 1))
        self.days = {d: c for d, c in self.days.items() if d >= floor}
        self.months = {m: c for m, c in self.months.items() if m >= floor_month}


@dataclass(frozen=True, slots=True)
class Effects:
    """What one event does: one decision, zero or more grants, state writes in order."""

    decision: Decision
    grants: tuple[CoinGrant, ...] = ()
    writes: tuple[tuple[str, bytes], ...] = ()


def process(txn: Transaction, book: RuleBook, state: StateReader, source: str = "") -> Effects:
    """Decide one valid event against the user's state; read-only.

    ``source`` (``partition:offset`` of the feed message) is stored with the
    record so tools can tell a replay from a resend.
    """
    user = txn.payer_vpa
    if txn.status is not TxnStatus.SUCCESS:
        return Effects(_decision(txn, book, Outcome.IGNORED, 0, [Reason.NOT_SUCCESS]))

    head_raw = state.get(head_key(user))
    head = Head.load(head_raw)
    if state.get(txn_key(user, txn.txn_id)) is not None:
        return Effects(_decision(txn, book, Outcome.DUPLICATE, 0, [Reason.ALREADY_PROCESSED]))
    if head_raw is not None and head.last_txn == txn.txn_id:
        # The head landed but the event's own records did not: restore them.
        repair = tuple((k, orjson.dumps(v)) for k, v in head.last_writes)
        decision = _decision(txn, book, Outcome.DUPLICATE, 0, [Reason.ALREADY_PROCESSED])
        return Effects(decision, (), repair)

    day, month = day_and_month(txn.event_time, book.tz)
    if txn.kind is TxnKind.PAYMENT:
        return _pay(txn, book, state, head, day, month, source)
    return _refund(txn, book, state, head, day, source)


def _pay(
    txn: Transaction,
    book: RuleBook,
    state: StateReader,
    head: Head,
    day: int,
    month: int,
    source: str,
) -> Effects:
    user = txn.payer_vpa
    head.see(day)
    earned = book.earn(txn)
    raw_coins = sum(c for _, c in earned)
    reasons: list[Reason] = []
    granted = 0
    if day < head.floor_day():
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

    record = {"k": "P", "d": day, "a": txn.amount_paise, "g": granted, "r": 0, "c": 0, "s": source}
    grants: tuple[CoinGrant, ...] = ()
    if granted > 0:
        head.days[day] = head.days.get(day, 0) + granted
        head.months[month] = head.months.get(month, 0) + granted
        grants = (
            CoinGrant(
                grant_id=grant_id_for_payment(txn.txn_id),
                kind=GrantKind.GRANT,
                user_vpa=user,
                coins=granted,
                txn_id=txn.txn_id,
                cause_txn_id=txn.txn_id,
                reason=GrantReason.PAYMENT,
                rules_version=book.version,
                rules=_split(earned, granted),
                event_time=txn.event_time,
            ),
        )
    outcome = Outcome.GRANTED if granted > 0 else Outcome.NO_REWARD
    writes = [(txn_key(user, txn.txn_id), record)]
    return Effects(
        _decision(txn, book, outcome, granted, reasons), grants, _with_head(user, head, txn, writes)
    )


def _refund(
    txn: Transaction, book: RuleBook, state: StateReader, head: Head, day: int, source: str
) -> Effects:
    user = txn.payer_vpa
    original_id = txn.original_txn_id or ""
    head.see(day)
    own = {"k": "R", "d": day, "o": original_id, "c": 0, "s": source}
    writes: list[tuple[str, dict[str, Any]]] = []
    raw = state.get(txn_key(user, original_id))
    payment = orjson.loads(raw) if raw is not None else None
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
        writes.append((txn_key(user, original_id), payment))
    own["c"] = clawed
    writes.insert(0, (txn_key(user, txn.txn_id), own))
    grants: tuple[CoinGrant, ...] = ()
    if clawed:
        grants = (
            CoinGrant(
                grant_id=grant_id_for_refund(txn.txn_id),
                kind=GrantKind.CLAWBACK,
                user_vpa=user,
                coins=clawed,
                txn_id=original_id,
                cause_txn_id=txn.txn_id,
                reason=GrantReason.REFUND,
                rules_version=book.version,
                event_time=txn.event_time,
            ),
        )
    outcome = Outcome.CLAWED_BACK if clawed else Outcome.NO_REWARD
    return Effects(
        _decision(txn, book, outcome, clawed, reasons), grants, _with_head(user, head, txn, writes)
    )


def _with_head(
    user: str, head: Head, txn: Transaction, writes: list[tuple[str, dict[str, Any]]]
) -> tuple[tuple[str, bytes], ...]:
    head.last_txn = txn.txn_id
    head.last_writes = writes
    return ((head_key(user), head.dump()), *((k, orjson.dumps(v)) for k, v in writes))


def _split(earned: list[tuple[str, int]], granted: int) -> list[RuleCoins]:
    """Attribute the granted coins to rules in file order (caps cut the last ones)."""
    out: list[RuleCoins] = []
    left = granted
    for rule_id, coins in earned:
        take = min(coins, left)
        if take > 0:
            out.append(RuleCoins(rule_id=rule_id, coins=take))
            left -= take
    return out


def _decision(
    txn: Transaction, book: RuleBook, outcome: Outcome, coins: int, reasons: list[Reason]
) -> Decision:
    return Decision(
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
            self[key] = value


def replay(txns: list[Transaction], book: RuleBook) -> tuple[list[Effects], MemoryState]:
    """Run events through the core in order, as one worker would."""
    state = MemoryState()
    out = []
    for txn in txns:
        effects = process(txn, book, state)
        state.apply(effects)
        out.append(effects)
    return out, state
