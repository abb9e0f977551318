"""Internal contracts of the circular-transfer detector (not for other teams).

``PairPayment`` goes to ``<app_id>.payments-by-pair`` keyed by the unordered
pair, so both directions of one pair meet in one partition. ``FraudFlag`` comes
back on ``<app_id>.txns-by-payer`` keyed by the flagged user, so it is applied
in order with that user's own events, against that user's state.
Times are integer epoch milliseconds: exact, and cheap to compare.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import TxnId, Vpa
from schemas.fraud_alert import FraudRule

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class PairPayment(BaseModel):
    model_config = _FROZEN

    txn_id: TxnId
    payer_vpa: Vpa
    payee_vpa: Vpa
    t_ms: int
    source: str = Field(description="topic:partition:offset of the feed message")
    ingested_ns: int


class Violation(BaseModel):
    """A window that breaks a rule, ending at (and triggered by) one payment."""

    model_config = _FROZEN

    rule: FraudRule
    trigger_txn_id: TxnId
    t_ms: int
    window_ms: int
    txn_ids: tuple[TxnId, ...]


class FraudFlag(BaseModel):
    model_config = _FROZEN

    type: Literal["flag"] = "flag"
    user_vpa: Vpa
    violations: tuple[Violation, ...]
    source: str = Field(description="pair-stream position; one progress path per side")
    ingested_ns: int
