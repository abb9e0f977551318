"""Internal contract: a validated transaction re-keyed by payer for the decide stage.

Not for other teams; it lives here so both stages agree on one typed shape.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.transaction import Transaction


class RoutedTransaction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    txn: Transaction
    source: str = Field(description="topic:partition:offset of the feed message")
    ingested_ns: int = Field(description="wall clock (ns) when the worker read the feed message")
