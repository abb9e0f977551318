"""One decision per valid input event, topic ``rewards.decisions``.

Together with the dead letters this accounts for every input message:
messages in = decisions + dead letters.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_serializer

from schemas.common import Coins, Rfc3339, TxnId, Vpa, to_rfc3339


class Outcome(StrEnum):
    GRANTED = "GRANTED"
    CLAWED_BACK = "CLAWED_BACK"
    NO_REWARD = "NO_REWARD"
    IGNORED = "IGNORED"
    DUPLICATE = "DUPLICATE"
    FRAUD_HOLD = "FRAUD_HOLD"


class Reason(StrEnum):
    """Machine codes that explain an outcome; a decision may carry several."""

    RULE_MATCHED = "rule_matched"
    NO_MATCHING_RULE = "no_matching_rule"
    ZERO_COINS = "zero_coins"
    DAILY_CAP = "daily_cap"
    MONTHLY_CAP = "monthly_cap"
    NOT_SUCCESS = "status_not_success"
    ALREADY_PROCESSED = "already_processed"
    REFUND_CLAWBACK = "refund_clawback"
    UNKNOWN_PAYMENT = "unknown_payment"
    UNREWARDED_PAYMENT = "unrewarded_payment"
    NOTHING_LEFT = "nothing_left_to_claw_back"
    BEYOND_HORIZON = "beyond_state_horizon"
    FRAUD_VELOCITY = "fraud_velocity"
    FRAUD_SAME_PAYEE = "fraud_same_payee"
    FRAUD_CIRCULAR = "fraud_circular"


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    txn_id: TxnId
    user_vpa: Vpa
    outcome: Outcome
    coins: Coins
    reasons: list[Reason]
    rules_version: str
    event_time: Rfc3339

    @field_serializer("event_time")
    def _ser_time(self, value: datetime) -> str:
        return to_rfc3339(value)
