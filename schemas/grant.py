"""Coin grants and clawbacks for the wallet, topic ``rewards.coin-grants``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from schemas.common import PositiveCoins, Rfc3339, TxnId, Vpa, to_rfc3339


class GrantKind(StrEnum):
    GRANT = "GRANT"
    CLAWBACK = "CLAWBACK"


class GrantReason(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"
    FRAUD = "FRAUD"


class RuleCoins(BaseModel):
    """How many of a grant's coins one rule contributed (after caps)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rule_id: str
    coins: PositiveCoins


class CoinGrant(BaseModel):
    """One change to a user's coin balance.

    ``grant_id`` is deterministic (``<txn_id>:grant``, ``<refund txn_id>:clawback``,
    ``<txn_id>:fraud-clawback``)
    so a replay re-emits the same id and the wallet applies each id at most once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    grant_id: str = Field(min_length=1, max_length=128)
    kind: GrantKind
    user_vpa: Vpa
    coins: PositiveCoins
    txn_id: TxnId
    cause_txn_id: TxnId
    reason: GrantReason
    rules_version: str
    rules: list[RuleCoins] = Field(default_factory=list)
    event_time: Rfc3339

    @field_serializer("event_time")
    def _ser_time(self, value: datetime) -> str:
        return to_rfc3339(value)


def grant_id_for_payment(txn_id: str) -> str:
    return f"{txn_id}:grant"


def grant_id_for_refund(refund_txn_id: str) -> str:
    return f"{refund_txn_id}:clawback"


def grant_id_for_fraud(txn_id: str) -> str:
    """One fraud clawback per payment at most: it takes all that is left."""
    return f"{txn_id}:fraud-clawback"
