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

A value is one version byte, a flag byte (raw, or compressed when the body
is 1 KiB or more and that makes it smaller) and a body: an orjson array of
positional fields. User records are written in version 3 (``encode_user``:
the payments' numbers in short rows, day counters only where they differ
from their payments' coins, compressed with zstd at level 1 and a preset
dictionary) and read in versions 3, 2 (the same body, raw-deflated with the
same dictionary) and 1; pair records are version 1 (raw-deflated). Money and
times are integers only. ``decode_*`` refuses any other version with
``StateFormatError``.

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
>>> try:
...     decode_user(b"\\x07[]")
... except StateFormatError as exc:
...     print(exc)
user record has format version 7; this build reads version 3 or 2 or 1
>>> pair = decode_pair(None)
>>> pair.newest, pair.seen = 5, [(5, "T1", True)]
>>> decode_pair(encode_pair(pair)) == pair
True
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson
import zstandard

from rewards.errors import RewardsError
from rewards.fraud import FraudState
from schemas.grant import RuleCoins
from schemas.trusted import build

if TYPE_CHECKING:
    from rewards.circular import PairState

#: The first byte of the user records this module writes (of pair records: ``PAIR_VERSION``).
FORMAT_VERSION = 3
PAIR_VERSION = 1
_USER_READS = (FORMAT_VERSION, 2, 1)
_PAIR_READS = (1,)
#: The flag byte: the body as it is, raw-deflated (versions 1 and 2), zstd (version 3).
_RAW, _DEFLATED, _ZSTD = 0, 1, 2
#: Bodies at least this long are compressed (if that makes them smaller).
_COMPRESS_FROM = 1024
#: Version 3 compresses with zstd at level 1 (as small as deflate at level 6 and 2-7x
#: faster: a hot user's record is re-encoded every batch that touches it), version 2
#: deflated, both with a preset dictionary: strings most records repeat (the JSON around
#: the fields, the default feed topic's paths, the rule ids of the shipped rules, common
#: PSP handles). It is part of the format: another dictionary is another version.
_ZSTD_LEVEL = 1
#: A zstd frame claiming a longer body is corrupt (a hot user's is ~170 KB).
_BODY_MAX = 64 << 20
_ZDICT = (
    b'@okhdfcbank"],[@okicici"],[@apl"],[@axl"],[@ibl"],[@upi"],[@icici"],[@oksbi"],'
    b'[@paytm"],[@okaxis"],[@ybl"]],{},{}],"upi.transactions:5":,"upi.transactions:4":,'
    b'"upi.transactions:3":,"upi.transactions:2":,"upi.transactions:1":,'
    b'[{"upi.transactions:0":,"txns~lo:0":,"txns~hi:0":,'
    b'["p2p-welcome","merchant-base","grocery-dining-boost"],[[0],[1],[1,2]],[],[],'
    b"[1,4,4,1,2,0,1,1],1000]"
)
#: A version 2 record leaves out trailing fields with these values (the first
#: ``_HEAD_REQUIRED`` are always there).
_HEAD_REQUIRED = 8
_HEAD_DEFAULTS: tuple[Any, ...] = (None,) * _HEAD_REQUIRED + ([], [], [], [], [], [], 1)
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


_ZSTD_DICT = zstandard.ZstdCompressionDict(_ZDICT, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
#: One compressor and decompressor per thread (an instance is not thread-safe).
_codecs = threading.local()


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    try:
        pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] = _codecs.pair
    except AttributeError:
        pair = _codecs.pair = (
            zstandard.ZstdCompressor(
                level=_ZSTD_LEVEL, dict_data=_ZSTD_DICT, write_checksum=False, write_dict_id=False
            ),
            zstandard.ZstdDecompressor(dict_data=_ZSTD_DICT),
        )
    return pair


def _pack(body: bytes, version: int) -> bytes:
    if len(body) >= _COMPRESS_FROM:
        if version == FORMAT_VERSION:
            flag, small = _ZSTD, _zstd()[0].compress(body)
        else:  # a pair record: deflate level 1 (2x faster than 6, ~3% larger)
            flag, small = _DEFLATED, zlib.compress(body, 1, -15)
        if len(small) < len(body):
            return bytes((version, flag)) + small
    return bytes((version, _RAW)) + body


def _unpack(raw: bytes, what: str, reads: tuple[int, ...]) -> tuple[int, bytes]:
    """The version byte and the (inflated) body of a stored value."""
    if not raw or raw[0] not in reads:
        version = raw[0] if raw else "(empty)"
        readable = " or ".join(str(v) for v in reads)
        raise StateFormatError(
            f"{what} record has format version {version}; this build reads version {readable}"
        )
    version = raw[0]
    try:
        flag = raw[1]
        if flag == _RAW:
            return version, raw[2:]
        if flag == _ZSTD and version == FORMAT_VERSION:
            frame = raw[2:]
            size = zstandard.frame_content_size(frame)
            if not 0 <= size <= _BODY_MAX:
                raise zlib.error(f"zstd frame of {size} bytes")
            return version, _zstd()[1].decompress(frame)
        if flag != _DEFLATED or version == FORMAT_VERSION:
            raise zlib.error(f"flag {flag} in a version {version} record")
        if version == 1:
            return 1, zlib.decompress(raw[2:], -15)
        inflate = zlib.decompressobj(-15, _ZDICT)
        body = inflate.decompress(raw[2:]) + inflate.flush()
        if not inflate.eof:
            raise zlib.error("incomplete deflate stream")
        return version, body
    except (IndexError, zlib.error, zstandard.ZstdError) as exc:
        raise StateFormatError(f"{what} record is corrupt: {exc}") from None


#: Decoded ``RuleCoins``, shared (they are frozen): most are the same few
#: (rule, coins) pairs, and building one is most of a payment's decode time.
_RULE_COINS: dict[tuple[str, int], RuleCoins] = {}
_RULE_COINS_MAX = 16_384


def _rule_coins(rule_id: str, coins: int) -> RuleCoins:
    """``RuleCoins.model_construct(rule_id=..., coins=...)``, interned.

    Built as the core's outputs are (``schemas.trusted``; tests/unit/test_state.py
    compares): decode runs once per user per batch.
    """
    key = (rule_id, coins)
    model = _RULE_COINS.get(key)
    if model is None:
        model = build(RuleCoins, {"rule_id": rule_id, "coins": coins})
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


def _combo(combos: dict[tuple[str, ...], int], table: dict[str, int], ids: tuple[str, ...]) -> int:
    """The rule code of a new combination of rule ids (``encode_user``)."""
    for rule_id in ids:
        table.setdefault(rule_id, len(table))
    code = combos[ids] = len(combos) + 2
    return code


def encode_user(state: UserState) -> bytes:
    """One user's record, format version 3 (the body of version 2), an orjson array::

        [marks, newest_day, months, fraud, last_txn, forgot, ids, payments,
         rule_ids, combos, refunds, rule_lists, days, days_gone, dt_scale]

    (trailing fields from ``rule_ids`` on are left out while they are empty,
    and ``dt_scale`` while it is 1).

    ``ids`` lists every txn record's id in recorded order; ``refunds`` holds
    ``[i, age, original, clawed]`` for the refunds among them (``i`` their
    index in ``ids``; ``original`` the index of the refunded payment there, or
    its id). The others are the payments, in order: ``payments`` has one
    array each, ``[age, dt, amount, granted, code, split, refunded,
    clawed]`` without its trailing zeros. age = newest_day - day; dt = t
    minus the previous payment's t (0 before the first), divided by
    ``dt_scale`` (1000 when every t is whole seconds, else 1).

    The rule ``code`` is 0 for no rules; 1 when the payment's ordinal is
    followed in the flat ``rule_lists`` by ``[i, coins, ...]`` (indexes into
    ``rule_ids``; when its length is odd the last rule has the rest of
    ``granted``); else ``k + 2`` for ``combos[k]``, a list of one or two
    indexes into ``rule_ids``: one rule has every coin; of two, the first has
    ``split`` coins and the second the rest (``split`` is 0 otherwise).

    ``days`` is flat ``[age, coins, ...]`` for each day whose counter is not
    the sum of its payments' ``granted`` (a fraud clawback lowered it), and
    ``days_gone`` the ages of the days some payment granted coins on that have
    no counter; every other day's counter is that sum. ``months`` is flat
    ``[month, coins, ...]``. ``fraud`` is ``null`` or ``[newest, seen,
    cooldowns, holds]``; an entry of ``seen`` is ``[i, payee]`` when it is the
    record at index ``i`` of ``ids`` (same id and time), else ``[t, txn_id,
    payee]``. ``forgot`` is 0 or 1.
    """
    newest = state.newest_day
    txns = state.txns
    scale = 1 if any([type(r) is Payment and r.t % 1000 for r in txns.values()]) else 1000
    refunds: list[tuple[int, int, int | str, int]] = []
    where: dict[str, tuple[int, int]] = {}
    table: dict[str, int] = {}
    combos: dict[tuple[str, ...], int] = {}  # rule ids -> code
    single: dict[str, int] = {}  # rule id -> the code of its one-rule combo
    rule_lists: list[Any] = []
    rows: list[tuple[int, ...]] = []
    derived: dict[int, int] = {}
    prev = 0
    for i, (txn_id, rec) in enumerate(txns.items()):
        if type(rec) is Payment:
            t, granted, rules = rec.t, rec.granted, rec.rules
            where[txn_id] = (i, t)
            code = split = 0
            if rules:
                first = rules[0]
                if len(rules) == 1 and first.coins == granted:  # the usual case
                    code = single.get(first.rule_id, 0)
                    if not code:
                        code = single[first.rule_id] = _combo(combos, table, (first.rule_id,))
                elif len(rules) == 2 and first.coins + rules[1].coins == granted:
                    pair = (first.rule_id, rules[1].rule_id)
                    code = combos.get(pair, 0) or _combo(combos, table, pair)
                    split = first.coins
                else:
                    code = 1
                    rule_lists += (len(rows), _pack_rules(rules, granted, table))
            day = rec.day
            if granted > 0:
                derived[day] = derived.get(day, 0) + granted
            age, dt, refunded, clawed = newest - day, (t - prev) // scale, rec.refunded, rec.clawed
            prev = t
            if refunded or clawed:
                rows.append((age, dt, rec.amount, granted, code, split, refunded, clawed))
            elif split:
                rows.append((age, dt, rec.amount, granted, code, split))
            elif code:
                rows.append((age, dt, rec.amount, granted, code))
            else:
                rows.append((age, dt, rec.amount, granted))
        else:
            assert isinstance(rec, Refund)
            at = where.get(rec.original)
            original = rec.original if at is None else at[0]
            refunds.append((i, newest - rec.day, original, rec.clawed))
    days = state.days
    moved = sorted((newest - d, c) for d, c in days.items() if derived.get(d) != c)
    changed = [x for kv in moved for x in kv]
    gone = sorted(newest - d for d in derived if d not in days)
    f = state.fraud
    fraud: Any = None
    if f.newest is not None or f.hold:
        seen: list[Any] = []
        for t, txn_id, payee in f.seen:
            at = where.get(txn_id)
            seen.append((at[0], payee) if at is not None and at[1] == t else (t, txn_id, payee))
        fraud = (f.newest, seen, f.cool, f.hold)
    fields: list[Any] = [
        state.marks,
        newest,
        [x for kv in state.months.items() for x in kv],
        fraud,
        state.last_txn,
        int(state.forgot),
        list(txns),
        rows,
        list(table),
        [[table[rule_id] for rule_id in combo] for combo in combos],
        refunds,
        rule_lists,
        changed,
        gone,
        scale if rows else 1,
    ]
    while len(fields) > _HEAD_REQUIRED and fields[-1] == _HEAD_DEFAULTS[len(fields) - 1]:
        fields.pop()
    return _pack(orjson.dumps(fields), FORMAT_VERSION)


def decode_user(raw: bytes | None) -> UserState:
    """Inverse of ``encode_user`` (and of versions 2 and 1); ``None`` is a fresh state."""
    if raw is None:
        return UserState()
    version, body = _unpack(raw, "user", _USER_READS)
    try:
        doc = orjson.loads(body)
        return _decode_user_v1(doc) if version == 1 else _decode_user_v2(doc)  # v3: v2's body
    except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        raise StateFormatError(f"user record is corrupt: {exc!r}") from None


def _decode_user_v2(fields: list[Any]) -> UserState:
    if not _HEAD_REQUIRED <= len(fields) <= len(_HEAD_DEFAULTS):
        raise ValueError(f"{len(fields)} fields")
    (
        marks,
        newest,
        months,
        fraud,
        last_txn,
        forgot,
        ids,
        rows,
        table,
        combos,
        refunds,
        rule_lists,
        changed,
        gone,
        scale,
    ) = fields + list(_HEAD_DEFAULTS[len(fields) :])
    if len(rows) + len(refunds) != len(ids):
        raise ValueError(f"{len(rows)} payments and {len(refunds)} refunds for {len(ids)} ids")
    complex_rules = dict(zip(rule_lists[::2], rule_lists[1::2], strict=True))
    refund_at = {entry[0]: entry for entry in refunds}
    records: dict[str, Record] = {}
    derived: dict[int, int] = {}
    prev = j = 0
    for i, txn_id in enumerate(ids):
        refund = refund_at.get(i)
        if refund is not None:
            original = refund[2]
            if type(original) is int:
                original = ids[original]
            records[txn_id] = Refund(newest - refund[1], original, refund[3])
            continue
        row = rows[j]
        n = len(row)
        code = split = refunded = clawed = 0
        if n == 4:
            age, dt, amount, granted = row
        elif n == 5:
            age, dt, amount, granted, code = row
        elif n == 6:
            age, dt, amount, granted, code, split = row
        else:
            age, dt, amount, granted, code, split, refunded, clawed = row
        day = newest - age
        prev += dt * scale
        rules: Sequence[RuleCoins] = ()
        if code > 1:
            combo = combos[code - 2]
            if len(combo) == 1:
                rules = [_rule_coins(table[combo[0]], granted)]
            else:
                rules = [
                    _rule_coins(table[combo[0]], split),
                    _rule_coins(table[combo[1]], granted - split),
                ]
        elif code == 1:
            rules = _unpack_rules(complex_rules[j], granted, table)
        records[txn_id] = Payment(day, prev, amount, granted, refunded, clawed, rules)
        if granted > 0:
            derived[day] = derived.get(day, 0) + granted
        j += 1
    for age in gone:
        del derived[newest - age]
    for k in range(0, len(changed), 2):
        derived[newest - changed[k]] = changed[k + 1]
    return UserState(
        marks,
        derived,
        dict(zip(months[::2], months[1::2], strict=True)),
        newest,
        _fraud_state(fraud, records, ids),
        records,
        last_txn,
        bool(forgot),
    )


def _fraud_state(fraud: Any, records: dict[str, Record], ids: list[str]) -> FraudState:
    if fraud is None:
        return FraudState()
    f_newest, seen, cool, hold = fraud
    for i, entry in enumerate(seen):
        if len(entry) == 2:
            txn_id = ids[entry[0]]
            seen[i] = [records[txn_id].t, txn_id, entry[1]]  # type: ignore[union-attr]
    return FraudState(f_newest, seen, cool, hold)


def _decode_user_v1(doc: Any) -> UserState:
    """A version 1 record: ``[marks, newest_day, days, months, fraud, txns,
    last_txn, forgot, rule_ids]``, every field positional.

    ``days`` is flat ``[age, coins, ...]``; ``txns`` one array per record: a
    payment ``[id, age, dt, amount, granted, refunded, clawed(, rules)]``, a
    refund ``[id, age, original_id, clawed]``; ``rules`` absent: none when
    ``granted`` is 0, else rule 0 has every coin; an index: that rule has
    every coin; else a flat ``[i, coins, ...]`` (``_unpack_rules``). Written
    without ``forgot`` and ``rule_ids`` (7 fields, as version 1 records were
    before they were added), it decodes with ``forgot`` true (it cannot be
    known) and no rules on its payments.
    """
    marks, newest, days, months, fraud, txns, last_txn = doc[:7]
    if len(doc) == 7:
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
            records[txn_id] = Payment(newest - age, prev, amount, granted, refunded, clawed, rules)
        elif n == 8:
            txn_id, age, dt, amount, granted, refunded, clawed, extra = entry
            prev += dt
            rules = _unpack_rules(extra, granted, table)  # type: ignore[arg-type]
            records[txn_id] = Payment(newest - age, prev, amount, granted, refunded, clawed, rules)
        else:
            txn_id, age, original, clawed = entry
            records[txn_id] = Refund(newest - age, original, clawed)
    return UserState(
        marks,
        {newest - age: coins for age, coins in zip(days[::2], days[1::2], strict=True)},
        dict(zip(months[::2], months[1::2], strict=True)),
        newest,
        _fraud_state(fraud, records, [entry[0] for entry in txns]),
        records,
        last_txn,
        forgot,
    )


def encode_pair(state: PairState) -> bytes:
    """A pair's record: ``[newest, [[t, txn_id, forward], ...]]`` (forward as 0/1)."""
    return _pack(
        orjson.dumps((state.newest, [(t, x, int(f)) for t, x, f in state.seen])), PAIR_VERSION
    )


def decode_pair(raw: bytes | None) -> PairState:
    """Inverse of ``encode_pair``; ``None`` is a fresh pair."""
    from rewards.circular import PairState  # circular imports this module for its keys

    if raw is None:
        return PairState()
    try:
        newest, seen = orjson.loads(_unpack(raw, "pair", _PAIR_READS)[1])
        return PairState(newest, [(t, txn, bool(f)) for t, txn, f in seen])
    except (ValueError, TypeError) as exc:
        raise StateFormatError(f"pair record is corrupt: {exc}") from None
