"""Internal contract: a validated transaction re-keyed by payer for the decide stage.

Not for other teams; it lives here so both stages agree on one typed shape.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter

from schemas.flag import FraudFlag
from schemas.transaction import Transaction


class RoutedTransaction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["txn"] = "txn"
    txn: Transaction
    source: str = Field(description="topic:partition:offset of the feed message")
    ingested_ns: int = Field(description="wall clock (ns) when the worker read the feed message")


def _kind(value: Any) -> str:
    # Envelopes written before flags existed carry no "type": they are txns.
    if isinstance(value, dict):
        return str(value.get("type", "txn"))
    return str(getattr(value, "type", "txn"))


#: One message on ``txns-by-payer``: a user's event or a flag on them.
ByPayerItem = Annotated[
    Annotated[RoutedTransaction, Tag("txn")] | Annotated[FraudFlag, Tag("flag")],
    Discriminator(_kind),
]


class RoutedPack(BaseModel):
    """Several items for one partition of ``txns-by-payer``, in order, as one record.

    The ingest stage sends one pack per processing batch and partition instead
    of one record per event: the decide stage then pays Faust's per-record
    cost once per pack (docs/performance.md). Items keep their own feed
    source, so progress marks and replays work per item exactly as before.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["pack"] = "pack"
    items: tuple[ByPayerItem, ...]


#: What the decide stage reads from ``txns-by-payer``: an item or a pack of items.
ByPayer = TypeAdapter(
    Annotated[
        Annotated[RoutedTransaction, Tag("txn")]
        | Annotated[FraudFlag, Tag("flag")]
        | Annotated[RoutedPack, Tag("pack")],
        Discriminator(_kind),
    ]
)
