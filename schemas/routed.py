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


#: What the decide stage reads from ``txns-by-payer``: a user's event or a flag on them.
ByPayer = TypeAdapter(
    Annotated[
        Annotated[RoutedTransaction, Tag("txn")] | Annotated[FraudFlag, Tag("flag")],
        Discriminator(_kind),
    ]
)
