"""Fraud alerts for the risk team, topic ``rewards.fraud-alerts`` (key ``user_vpa``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from schemas.common import Rfc3339, TxnId, Vpa, to_rfc3339


class FraudRule(StrEnum):
    VELOCITY = "velocity"
    SAME_PAYEE = "same_payee"
    CIRCULAR = "circular"


class FraudAlert(BaseModel):
    """One flag raised on one user; at most one per rule while its cooldown runs.

    ``alert_id`` is ``<triggering txn_id>:<rule>:<user_vpa>``, so a replay
    re-emits the same id and consumers can drop repeats.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    alert_id: str = Field(min_length=1, max_length=256)
    user_vpa: Vpa
    rule: FraudRule
    event_time: Rfc3339 = Field(description="event_time of the triggering payment")
    window_seconds: int = Field(ge=1)
    txn_ids: list[TxnId] = Field(description="the counted payments in the window, oldest first")
    cooldown_until: Rfc3339 = Field(
        description="payments of this user before this instant earn nothing"
    )

    @field_serializer("event_time", "cooldown_until")
    def _ser_time(self, value: datetime) -> str:
        return to_rfc3339(value)


def alert_id_for(trigger_txn_id: str, rule: FraudRule, user_vpa: str) -> str:
    return f"{trigger_txn_id}:{rule.value}:{user_vpa}"
