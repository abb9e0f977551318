"""The rules file (YAML), validated at startup and by ``upi-rewards check-rules``.

Strict and closed (``extra="forbid"``): a typo such as ``max_coin`` must stop
startup naming the field, never silently turn a cap off.
"""

from __future__ import annotations

from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.common import Mcc, PayeeKind, Rfc3339

RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
NonNegInt = Annotated[int, Field(strict=True, ge=0)]
#: A fraud window longer than a week would make per-user state large; the
#: bound keeps memory and disk per user finite however long the stream runs.
MAX_WINDOW_SECONDS = 7 * 24 * 3600
WindowSeconds = Annotated[int, Field(strict=True, ge=1, le=MAX_WINDOW_SECONDS)]
_CLOSED = ConfigDict(frozen=True, extra="forbid")


class Match(BaseModel):
    """Every key optional; all given must hold for the rule to apply."""

    model_config = _CLOSED

    payee_kind: PayeeKind | None = None
    mcc_in: list[Mcc] | None = Field(default=None, min_length=1)
    min_amount_paise: NonNegInt | None = None
    max_amount_paise: NonNegInt | None = None
    active_from: Rfc3339 | None = None
    active_until: Rfc3339 | None = None

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        lo, hi = self.min_amount_paise, self.max_amount_paise
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_amount_paise must not exceed max_amount_paise")
        start, end = self.active_from, self.active_until
        if start is not None and end is not None and start >= end:
            raise ValueError("active_from must be before active_until")
        return self


class Reward(BaseModel):
    model_config = _CLOSED

    bps: Annotated[int, Field(strict=True, ge=0, le=10_000)] = 0
    flat_coins: NonNegInt = 0
    max_coins: NonNegInt | None = None


class Rule(BaseModel):
    model_config = _CLOSED

    id: RuleId
    match: Match = Match()
    reward: Reward


class Limits(BaseModel):
    model_config = _CLOSED

    daily_coins_per_user: NonNegInt | None = None
    monthly_coins_per_user: NonNegInt | None = None


class CountLimit(BaseModel):
    """More than ``max_payments`` in any ``window_seconds`` (inclusive) raises a flag."""

    model_config = _CLOSED

    max_payments: Annotated[int, Field(strict=True, ge=1)]
    window_seconds: WindowSeconds


class CircularLimit(BaseModel):
    """A->B with some B->A in the preceding ``window_seconds`` raises a flag on both."""

    model_config = _CLOSED

    window_seconds: WindowSeconds


class FraudRules(BaseModel):
    """Reward-farming detectors; each is off when absent."""

    model_config = _CLOSED

    velocity: CountLimit | None = None
    same_payee: CountLimit | None = None
    circular: CircularLimit | None = None
    cooldown_seconds: Annotated[int, Field(strict=True, ge=0, le=30 * 24 * 3600)] = 86_400
    #: How far behind a user's (or pair's) newest payment a payment may arrive
    #: and still be counted in the windows; None: each detector's own widest
    #: window, as before the setting existed. A replay of history at full speed
    #: interleaves feed partitions hours apart in event time, so a burst can
    #: arrive after a later-dated payment of the same user. Bounded like the
    #: windows because the state keeps this much history per user.
    allowed_lateness_seconds: (
        Annotated[int, Field(strict=True, ge=0, le=MAX_WINDOW_SECONDS)] | None
    ) = None


class RulesFile(BaseModel):
    model_config = _CLOSED

    version: Annotated[str, Field(min_length=1, max_length=64)]
    #: From this instant on (event time, inclusive) this version decides, until
    #: a version with a later ``effective_from`` does (``rewards.versions``).
    #: Optional in the worker's ``--rules`` file (the first version, in force
    #: before every other); required to publish to ``rewards.rules``.
    effective_from: Rfc3339 | None = None
    timezone: str
    limits: Limits = Limits()
    rules: list[Rule]
    fraud: FraudRules = FraudRules()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        seen: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in seen:
                raise ValueError(f"rules[{index}].id: duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self
