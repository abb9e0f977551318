"""Rejected input, topic ``rewards.dead-letters``: never dropped, never a crash."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class DeadLetterReason(StrEnum):
    """Bounded set of machine codes (also the metric label values)."""

    EMPTY = "EMPTY"  # no value (tombstone) or zero bytes
    TOO_LARGE = "TOO_LARGE"  # over the size limit; raw is truncated
    NOT_UTF8 = "NOT_UTF8"
    NOT_JSON = "NOT_JSON"
    NOT_OBJECT = "NOT_OBJECT"  # valid JSON, but not an object
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_FIELD = "INVALID_FIELD"
    INTERNAL_ERROR = "INTERNAL_ERROR"  # a bug of ours; the event is parked, not lost


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: DeadLetterReason
    detail: str
    field: str | None = Field(default=None, description="the offending field, when one is")
    raw: str
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    raw_size: int = Field(ge=0, description="length of the original message in bytes")
    raw_truncated: bool = False
    topic: str
    partition: int
    offset: int
