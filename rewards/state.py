"""Every key and record layout of the pipeline's state, and its one codec.

Two tables, one record per key, each written whole (so atomically):

* ``user-state``: key ``user_key(vpa)`` (the VPA's bytes), value
  ``encode_user(UserState)`` — everything the core knows about one payer:
  replay marks per input path, coins granted per recent IST day and month,
  the newest day seen, the fraud windows/cooldowns/holds, and the user's
  txn records (the dedupe markers; payments with what they earned per rule,
  what was refunded and clawed back) within ``CAP_HORIZON_DAYS`` of the newest
  day, and whether any older record was dropped.
* ``pair-state``: key ``pair_key(a, b)`` (the unordered pair), value
  ``encode_pair(PairState)`` (``rewards.circular``).

A value is one version byte (``FORMAT_VERSION``) followed by a body; the
body of version 1 is an orjson array of positional fields, raw-deflated when
that makes it smaller (the second byte says which). Money and times are
integers only. ``decode_*`` refuses any other version with ``StateFormatError``.

>>> user = UserState()
>>> user.marks["upi.transactions:3"] = 17
>>> user.newest_day = 739_945
>>> user.days[739_945] = 12
>>> user.months[24_323] = 12
>>> user.txns["T1"] = Payment(739_945, 1_764_000_000_000, 120_000, 12)
>>> user.txns["R1"] = Refund(739_945, "T1", 6)
>>> user.txns["T1"].refunded, user.txns["T1"].clawed = 60_000, 6
>>> raw = encode_user(user)
>>> raw[0] == FORMAT_VERSION
True
>>> decode_user(raw) == user
True
>>> decode_user(None) == UserState()
True
>>> decode_user(b"\\x07[]")
Traceback (most recent call last):
...
rewards.state.StateFormatError: user record has format version 7; this build reads version 1
>>> pair = decode_pair(None)
>>> pair.newest, pair.seen = 5, [(5, "T1", True)]
>>> decode_pair(encode_pair(pair)) == pair
True
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from rewards.errors import RewardsError
from rewards.fraud import FraudState
from schemas.grant import RuleCoins

if TYPE_CHECKING:
    from rewards.circular import PairState

#: The first byte of every value this module writes.
FORMAT_VERSION = 1
_RAW, _DEFLATED = 0, 1
#: Bodies at least this long are deflated (if that makes them smaller).
_DEFLATE_FROM = 1024
SEP = "\x1f"


class StateFormatError(RewardsError):
    """A stored value this build cannot read (another format version, or corrupt)."""


# --------------------------------------------------------------------------- keys


def user_key(vpa: str) -> bytes:
    """The ``user-state`` key: the payer's VPA (already lowercase), UTF-8."""
    return vpa.encode()


def pair_key(a: str, b: str) -> str:
    """The ``pair-state`` key: the unordered pair of VPAs."""
    return f"{a}{SEP}{b}" if a <= b else f"{b}{SEP}{a}"


def parse_source(source: str) -> tuple[str, int]:
    """Split ``topic:partition:offset`` into (``topic:partition``, offset).

    >>> parse_source("upi.transactions:3:1042")
    ('upi.transactions:3', 1042)
    >>> parse_source("txns~lo:0:7")
    ('txns~lo:0', 7)
    """
    path, _, offset = source.rpartition(":")
    if ":" not in path:
        raise ValueError(f"not topic:partition:offset: {source!r}")
    return path, int(offset)


# --------------------------------------------------------------------------- records


@dataclass(slots=True)
class Payment:
    """A SUCCESS payment within the horizon: what it earned and what was undone."""

    day: int  # IST day ordinal
    t: int  # event time, epoch ms
    amount: int  # paise
    granted: int  # coins
    refunded: int = 0  # paise refunded so far
    clawed: int = 0  # coins clawed back so far (refunds and fraud)
    #: The coins of its GRANT per rule (the grant's own list; empty when it earned
    #: nothing, and for a payment recorded before the state kept them).
    rules: Sequence[RuleCoins] = ()


@dataclass(slots=True)
class Refund:
    """A SUCCESS refund within the horizon (its dedupe marker)."""

    day: int
    original: str  # the refunded payment's txn id
    clawed: int  # coins this refund clawed back


Record = Payment | Refund


@dataclass(slots=True)
class UserState:
    """All of one user's state; the core mutates it in place, event by event."""

    #: ``topic:partition`` -> highest offset decided for this user on that path.
    marks: dict[str, int] = field(default_factory=dict)
    #: IST day ordinal -> coins granted that day (days within the horizon).
    days: dict[int, int] = field(default_factory=dict)
    #: months since year 0 -> coins granted that month.
    months: dict[int, int] = field(default_factory=dict)
    newest_day: int = 0
    fraud: FraudState = field(default_factory=FraudState)
    #: txn id -> record, in the order recorded.
    txns: dict[str, Record] = field(default_factory=dict)
    #: The txn id of the user's last decided SUCCESS event ("" after a flag): a
    #: resend right after an event that left no record (beyond the horizon) is
    #: still a duplicate, as it always was.
    last_txn: str = ""
    #: Did the state ever drop one of the user's txn records, or not keep one
    #: (beyond the horizon)? While not, every SUCCESS payment and refund ever
    #: decided for the user is in ``txns``: an id that is not was never seen.
    forgot: bool = False


def comparable(state: UserState) -> UserState:
    """The state without its replay marks: equal for a live worker and a simulation.

    (Their marks differ because their sources do.)
    """
    return replace(state, marks={})


# --------------------------------------------------------------------------- codec


def _pack(body: bytes) -> bytes:
    if len(body) >= _DEFLATE_FROM:
        small = zlib.compress(body, 1, -15)  # level 1: 2x faster than 6, ~3% larger
        if len(small) < len(body):
            return bytes((FORMAT_VERSION, _DEFLATED)) + small
    return bytes((FORMAT_VERSION, _RAW)) + body


def _unpack(raw: bytes, what: str) -> Any:
    if not raw or raw[0] != FORMAT_VERSION:
        version = raw[0] if raw else "(empty)"
        raise StateFormatError(
            f"{what} record has format version {version}; this build reads version {FORMAT_VERSION}"
        )
    try:
        body = raw[2:] if raw[1] == _RAW else zlib.decompress(raw[2:], -15)
        return orjson.loads(body)
    except (IndexError, zlib.error, orjson.JSONDecodeError) as exc:
        raise StateFormatError(f"{what} record is corrupt: {exc}") from None


_new = object.__new__
_set = object.__setattr__


#: Decoded ``RuleCoins``, shared (they are frozen): most are the same few
#: (rule, coins) pairs, and building one is most of a payment's decode time.
_RULE_COINS: dict[tuple[str, int], RuleCoins] = {}
_RULE_COINS_MAX = 16_384


def _rule_coins(rule_id: str, coins: int) -> RuleCoins:
    """``RuleCoins.model_construct(rule_id=..., coins=...)``, interned.

    Built as ``rewards.ledger._trusted`` builds them (tests/unit/test_state.py
    compares): decode runs once per user per batch.
    """
    key = (rule_id, coins)
    model = _RULE_COINS.get(key)
    if model is None:
        model = _new(RuleCoins)
        _set(model, "__dict__", {"rule_id": rule_id, "coins": coins})
        _set(model, "__pydantic_fields_set__", {"rule_id", "coins"})
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        if len(_RULE_COINS) < _RULE_COINS_MAX:
            _RULE_COINS[key] = model
    return model


def _pack_rules(rules: Sequence[RuleCoins], granted: int, table: dict[str, int]) -> list[Any]:
    """Several rules, or one without every coin: flat ``[i, coins, ...]`` (``encode_user``)."""
    flat: list[Any] = []
    left = granted
    for rc in rules:
        flat += (table.setdefault(rc.rule_id, len(table)), rc.coins)
        left -= rc.coins
    if left == 0:
        flat.pop()  # the last rule has the rest of ``granted``
    return flat


def _unpack_rules(extra: Any, granted: int, table: list[str]) -> Sequence[RuleCoins]:
    if type(extra) is int:
        return [_rule_coins(table[extra], granted)]
    out = []
    left = granted
    for i in range(0, len(extra) - 1, 2):
        out.append(_rule_coins(table[extra[i]], extra[i + 1]))
        left -= extra[i + 1]
    if len(extra) % 2:
        out.append(_rule_coins(table[extra[-1]], left))
    return out or ()


def encode_user(state: UserState) -> bytes:
    """One user's record: ``[marks, newest_day, days, months, fraud, txns, last_txn,
    forgot, rule_ids]``.

    ``days`` is flat ``[age, coins, ...]``, ``months`` flat ``[month, coins,
    ...]``. ``txns`` holds one array per record in recorded order: a payment
    ``[id, age, dt, amount, granted, refunded, clawed(, rules)]``, a refund
    ``[id, age, original_id, clawed]``, where
    age = newest_day - day and dt = t minus the previous payment's t (0
    before the first). ``fraud`` is ``null`` or ``[newest, seen, cooldowns,
    holds]``; an entry of ``seen`` is ``[i, payee]`` when it is the payment at
    index ``i`` of ``txns`` (same id and time), else ``[t, txn_id, payee]``.
    ``forgot`` is 0 or 1; ``rule_ids`` lists each rule id the payments name
    once, and a payment's ``rules`` names them by index: absent, no rules when
    ``granted`` is 0, else rule 0 has every coin; an index ``i``: rule ``i``
    has every coin; else a flat ``[i, coins, ...]``, and when its length is
    odd the last rule has the rest of ``granted``.

    A record without ``forgot`` and ``rule_ids`` (7 fields, as this version's
    records were before they were added) decodes with ``forgot`` true (it
    cannot be known) and no rules on its payments.
    """
    newest = state.newest_day
    txns: list[Any] = []
    where: dict[str, tuple[int, int]] = {}
    table: dict[str, int] = {}
    prev = 0
    for txn_id, rec in state.txns.items():
        if type(rec) is Payment:
            t, granted, rules = rec.t, rec.granted, rec.rules
            where[txn_id] = (len(txns), t)
            extra: Any = None
            if rules:
                if len(rules) == 1 and rules[0].coins == granted:  # the usual case
                    extra = table.setdefault(rules[0].rule_id, len(table)) or None
                else:
                    extra = _pack_rules(rules, granted, table)
            elif granted:
                extra = []  # coins, and no rules known
            age = newest - rec.day
            if extra is None:
                txns.append((txn_id, age, t - prev, rec.amount, granted, rec.refunded, rec.clawed))
            else:
                txns.append(
                    (txn_id, age, t - prev, rec.amount, granted, rec.refunded, rec.clawed, extra)
                )
            prev = t
        else:
            assert isinstance(rec, Refund)
            txns.append((txn_id, newest - rec.day, rec.original, rec.clawed))
    f = state.fraud
    fraud: Any = None
    if f.newest is not None or f.hold:
        seen: list[Any] = []
        for t, txn_id, payee in f.seen:
            at = where.get(txn_id)
            seen.append((at[0], payee) if at is not None and at[1] == t else (t, txn_id, payee))
        fraud = (f.newest, seen, f.cool, f.hold)
    doc = (
        state.marks,
        newest,
        [x for d, c in state.days.items() for x in (newest - d, c)],
        [x for kv in state.months.items() for x in kv],
        fraud,
        txns,
        state.last_txn,
        int(state.forgot),
        list(table),
    )
    return _pack(orjson.dumps(doc))


def decode_user(raw: bytes | None) -> UserState:
    """Inverse of ``encode_user``; ``None`` (no record yet) is a fresh state."""
    if raw is None:
        return UserState()
    try:
        doc = _unpack(raw, "user")
        marks, newest, days, months, fraud, txns, last_txn = doc[:7]
        if len(doc) == 7:  # written before ``forgot`` and the rules were kept
            forgot, table = newest != 0, None
        else:
            forgot_flag, table = doc[7:]
            forgot = bool(forgot_flag)
        records: dict[str, Record] = {}
        prev = 0
        first = table[0] if table else None
        for entry in txns:
            n = len(entry)
            if n == 7:
                txn_id, age, dt, amount, granted, refunded, clawed = entry
                prev += dt
                rules: Sequence[RuleCoins] = ()
                if granted and first is not None:
                    rules = [_rule_coins(first, granted)]
                records[txn_id] = Payment(
                    newest - age, prev, amount, granted, refunded, clawed, rules
                )
            elif n == 8:
                txn_id, age, dt, amount, granted, refunded, clawed, extra = entry
                prev += dt
                rules = _unpack_rules(extra, granted, table)  # type: ignore[arg-type]
                records[txn_id] = Payment(
                    newest - age, prev, amount, granted, refunded, clawed, rules
                )
            else:
                txn_id, age, original, clawed = entry
                records[txn_id] = Refund(newest - age, original, clawed)
        fraud_state = FraudState()
        if fraud is not None:
            f_newest, seen, cool, hold = fraud
            for i, entry in enumerate(seen):
                if len(entry) == 2:
                    txn_id = txns[entry[0]][0]
                    seen[i] = [records[txn_id].t, txn_id, entry[1]]  # type: ignore[union-attr]
            fraud_state = FraudState(f_newest, seen, cool, hold)
        return UserState(
            marks,
            {newest - age: coins for age, coins in zip(days[::2], days[1::2], strict=True)},
            dict(zip(months[::2], months[1::2], strict=True)),
            newest,
            fraud_state,
            records,
            last_txn,
            forgot,
        )
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise StateFormatError(f"user record is corrupt: {exc!r}") from None


def encode_pair(state: PairState) -> bytes:
    """A pair's record: ``[newest, [[t, txn_id, forward], ...]]`` (forward as 0/1)."""
    return _pack(orjson.dumps((state.newest, [(t, x, int(f)) for t, x, f in state.seen])))


def decode_pair(raw: bytes | None) -> PairState:
    """Inverse of ``encode_pair``; ``None`` is a fresh pair."""
    from rewards.circular import PairState  # circular imports this module for its keys

    if raw is None:
        return PairState()
    try:
        newest, seen = _unpack(raw, "pair")
        return PairState(newest, [(t, txn, bool(f)) for t, txn, f in seen])
    except (ValueError, TypeError) as exc:
        raise StateFormatError(f"pair record is corrupt: {exc}") from None
