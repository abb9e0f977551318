"""Internal contract: many events in one record of an internal topic (a *pack*).

The stateful stages pay Faust's per-record cost once per pack instead of once
per event. A pack goes to one partition of ``txns-by-payer`` or
``payments-by-pair`` (the partition every item's key hashes to), keeps its
items in order, and is versioned: ``{"v": 1, "items": [...]}``. The items are
the existing typed envelopes (``RoutedTransaction``, ``FraudFlag``,
``PairPayment``), so one codec validates a whole pack in one call.

>>> raw = encode_pack([b'{"a":1}', b'{"b":2}'])
>>> raw
b'{"v":1,"items":[{"a":1},{"b":2}]}'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.common import PayeeKind, TxnKind, TxnStatus
from schemas.flag import FraudFlag, PairPayment
from schemas.routed import RoutedTransaction
from schemas.transaction import Transaction
from schemas.trusted import build

PACK_VERSION = 1
#: Items per pack at most. A flag raised by the circular stage is identified by
#: ``pack offset × PACK_SLOTS + item index``: increasing along a partition.
PACK_SLOTS = 1000
#: Items a producer puts in one pack: a pack stays well under the broker's message limit.
PACK_MAX = PACK_SLOTS // 2


class TxnPack(BaseModel):
    """A pack on ``txns-by-payer``: users' events and the flags raised on them, in order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1]
    items: list[Annotated[RoutedTransaction | FraudFlag, Field(discriminator="type")]]


class PairPack(BaseModel):
    """A pack on ``payments-by-pair``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1]
    items: list[PairPayment]


TxnPacks = TypeAdapter(TxnPack)
PairPacks = TypeAdapter(PairPack)


def encode_pack(items: Sequence[bytes]) -> bytes:
    """Join already-encoded items (each one JSON object) into a pack."""
    return b'{"v":%d,"items":[' % PACK_VERSION + b",".join(items) + b"]}"


def encode_packs(items: Sequence[bytes]) -> Iterator[bytes]:
    """``items`` in order, ``PACK_MAX`` to a pack."""
    for i in range(0, len(items), PACK_MAX):
        yield encode_pack(items[i : i + PACK_MAX])


class PackError(ValueError):
    """Not a pack of this version (the whole record is parked as INTERNAL_ERROR)."""


_KINDS = {k.value: k for k in TxnKind}
_STATUSES = {s.value: s for s in TxnStatus}
_PAYEE_KINDS = {k.value: k for k in PayeeKind}


def _trusted_txn(doc: dict[str, Any]) -> Transaction:
    """A ``Transaction`` the edge validated and rendered (``model_dump_json``): rebuilt
    without validating again. The same fields and values validation gives for
    that rendering (tests/unit/test_packed.py compares the two on a feed)."""
    txn: Transaction = build(
        Transaction,
        {
            "txn_id": doc["txn_id"],
            "kind": _KINDS[doc["kind"]],
            "status": _STATUSES[doc["status"]],
            "payer_vpa": doc["payer_vpa"],
            "payee_vpa": doc["payee_vpa"],
            "payee_kind": _PAYEE_KINDS[doc["payee_kind"]],
            "mcc": doc["mcc"],
            "amount_paise": doc["amount_paise"],
            "currency": doc["currency"],
            "event_time": datetime.fromisoformat(doc["event_time"]),
            "original_txn_id": doc["original_txn_id"],
        },
    )
    return txn


def _items(raw: bytes | None) -> list[Any]:
    """The items of a pack of this version, as parsed JSON."""
    try:
        doc = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        raise PackError(f"not a pack: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != PACK_VERSION:
        raise PackError("not a version 1 pack")
    items: list[Any] = doc["items"]
    return items


def decode_txn_pack(raw: bytes | None) -> list[RoutedTransaction | FraudFlag]:
    """Read a ``txns-by-payer`` pack written by our own edge and circular stage.

    Transactions were validated at the edge and are rebuilt as they are (the
    stages' hot path validates each event once); flags are validated (rare).
    Raises ``PackError`` (or a ``KeyError``/``ValueError``) on anything else.
    """
    out: list[RoutedTransaction | FraudFlag] = []
    for item in _items(raw):
        kind = item.get("type")
        if kind == "txn":
            out.append(
                build(
                    RoutedTransaction,
                    {
                        "type": "txn",
                        "txn": _trusted_txn(item["txn"]),
                        "source": item["source"],
                        "ingested_ns": item["ingested_ns"],
                    },
                )
            )
        elif kind == "flag":
            out.append(FraudFlag.model_validate(item))
        else:
            raise PackError(f"unknown item type {kind!r}")
    return out


def decode_pair_pack(raw: bytes | None) -> list[PairPayment]:
    """Read a ``payments-by-pair`` pack written by our own edge (rebuilt as it is)."""
    fields = _PAIR_FIELDS
    return [build(PairPayment, {f: item[f] for f in fields}) for item in _items(raw)]


_PAIR_FIELDS = tuple(PairPayment.model_fields)
