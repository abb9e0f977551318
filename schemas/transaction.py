"""The bank transaction feed, topic ``upi.transactions`` (input contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from schemas.common import (
    Mcc,
    Paise,
    PayeeKind,
    Rfc3339,
    TxnId,
    TxnKind,
    TxnStatus,
    Vpa,
    to_rfc3339,
)

# Enum members as module constants: a class attribute lookup on an enum is a
# metaclass call in Python 3.11, and the cross-field check runs per event.
_MERCHANT, _REFUND, _PAYMENT = PayeeKind.MERCHANT, TxnKind.REFUND, TxnKind.PAYMENT


class Transaction(BaseModel):
    """One UPI payment or refund as the bank reports it.

    Strict: an amount given as ``"100"``, ``100.0`` or ``true`` is refused, so
    no float or string ever becomes money. Unknown fields are ignored so the
    bank can add fields without breaking us.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    txn_id: TxnId
    kind: TxnKind
    status: TxnStatus
    payer_vpa: Vpa
    payee_vpa: Vpa
    payee_kind: PayeeKind
    mcc: Mcc | None = None
    amount_paise: Paise
    currency: Literal["INR"]
    event_time: Rfc3339
    original_txn_id: TxnId | None = None

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        if self.payee_kind is _MERCHANT and self.mcc is None:
            raise _cross("missing", "mcc", "required when payee_kind is MERCHANT")
        kind = self.kind
        if kind is _REFUND and self.original_txn_id is None:
            raise _cross("missing", "original_txn_id", "required when kind is REFUND")
        if kind is _PAYMENT and self.original_txn_id is not None:
            raise _cross("invalid", "original_txn_id", "only allowed when kind is REFUND")
        return self

    @field_serializer("event_time")
    def _ser_time(self, value: datetime) -> str:
        return to_rfc3339(value)


def _cross(problem: str, field: str, message: str) -> PydanticCustomError:
    """A cross-field error that still names its field (in ``ctx``) for dead letters."""
    return PydanticCustomError(
        "cross_field",
        "{field}: {message}",
        {"field": field, "problem": problem, "message": message},
    )
