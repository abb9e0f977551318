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

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.flag import FraudFlag, PairPayment
from schemas.routed import RoutedTransaction

PACK_VERSION = 1
#: Items per pack at most. A flag raised by the circular stage is identified by
#: ``pack offset × PACK_SLOTS + item index``: increasing along a partition.
PACK_SLOTS = 1000


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
