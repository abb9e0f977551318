"""Calendar buckets for caps: the day and month of an event in the rules' zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo


def day_and_month(event_time: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """Return (proleptic day ordinal, months since year 0) of the local date.

    Plain integers keep the state small and make "days before" a subtraction.
    """
    local = event_time.astimezone(tz).date()
    return local.toordinal(), local.year * 12 + local.month - 1


def month_of_day(day: int) -> int:
    local = date.fromordinal(day)
    return local.year * 12 + local.month - 1
