"""Answers of the per-user rewards API (``GET /v1/users/...``, docs/contracts.md).

Output models only: built by ``rewards.account`` from a user's stored state,
serialised with ``model_dump_json``. Times are RFC 3339 in the rules'
timezone, dates ``YYYY-MM-DD``, months ``YYYY-MM``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_serializer

from schemas.common import Coins, TxnId, Vpa, to_rfc3339
from schemas.fraud_alert import FraudRule
from schemas.grant import RuleCoins


class DayRoom(BaseModel):
    """Coins granted on the calendar day of ``at`` (what the daily cap counts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    date: str
    coins_granted: Coins
    cap: Coins | None
    room: Coins | None


class MonthRoom(BaseModel):
    """Coins granted in the calendar month of ``at`` (what the monthly cap counts)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    month: str
    coins_granted: Coins
    cap: Coins | None
    room: Coins | None


class Hold(BaseModel):
    """Whether a fraud hold covers ``at``: payments then earn nothing."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    active: bool
    until: datetime | None
    rules: list[FraudRule]

    @field_serializer("until")
    def _ser_until(self, value: datetime | None) -> str | None:
        return None if value is None else to_rfc3339(value)


class RewardsAnswer(BaseModel):
    """``GET /v1/users/{vpa}/rewards``: how many coins the user can still earn at ``at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user_vpa: Vpa
    known: bool
    rules_version: str
    at: datetime
    day: DayRoom
    month: MonthRoom
    hold: Hold
    newest_event_time: datetime | None

    @field_serializer("at", "newest_event_time")
    def _ser_time(self, value: datetime | None) -> str | None:
        return None if value is None else to_rfc3339(value)


class PaymentOutcome(StrEnum):
    """Where a payment stands now (derived from the state, see docs/contracts.md)."""

    GRANTED = "GRANTED"
    NO_REWARD = "NO_REWARD"
    FRAUD_HOLD = "FRAUD_HOLD"


class PaymentAnswer(BaseModel):
    """``GET /v1/users/{vpa}/payments/{txn_id}``: what one payment earned and lost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    txn_id: TxnId
    user_vpa: Vpa
    outcome: PaymentOutcome
    amount_paise: int
    refunded_paise: int
    coins_granted: Coins
    coins_clawed_back: Coins
    #: The payment's GRANT per rule (its ``rules``); empty when it earned nothing.
    rules: list[RuleCoins]
    hold_rules: list[FraudRule]
    event_time: datetime

    @field_serializer("event_time")
    def _ser_time(self, value: datetime) -> str:
        return to_rfc3339(value)


class NotFoundReason(StrEnum):
    #: The state holds no record for this user at all.
    UNKNOWN_USER = "unknown_user"
    #: The user is known and the state has every txn record it ever had for
    #: them (none was dropped): no SUCCESS payment with this id was decided.
    NEVER_SEEN = "never_seen"
    #: The user is known, no payment with this id is held, and some of the
    #: user's records were dropped: never seen, or older than
    #: ``state_horizon_from`` (records beyond the horizon are dropped; which
    #: of the two cannot be told).
    NOT_IN_STATE = "not_in_state"
    #: The id is the user's refund, not a payment.
    NOT_A_PAYMENT = "not_a_payment"


class PaymentNotFound(BaseModel):
    """The 404 body of ``/payments/{txn_id}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error: str = "payment_not_found"
    reason: NotFoundReason
    #: The first day (rules' timezone) whose payments the state still holds;
    #: a payment before it is beyond the state horizon. Null for an unknown user.
    state_horizon_from: str | None


class ApiError(BaseModel):
    """Every other error body: a machine-readable ``error`` and a human ``detail``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error: str
    detail: str
