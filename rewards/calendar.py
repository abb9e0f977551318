"""Calendar buckets for caps: the day and month of an event in the rules' zone.

``day_and_month`` works on an aware datetime; ``day_and_month_ms`` on epoch
milliseconds, the form the ledger holds per event, with the zone's UTC offset
looked up once per UTC hour (an hour with an offset change inside it is
never cached, so every instant gets the offset the zone gives it).

>>> from zoneinfo import ZoneInfo
>>> from datetime import datetime
>>> ist = ZoneInfo("Asia/Kolkata")
>>> at = datetime.fromisoformat("2026-11-30T18:29:59.999+00:00")  # 23:59:59.999 IST
>>> day_and_month(at, ist) == day_and_month_ms(1_796_063_399_999, ist)
True
>>> day_and_month_ms(1_796_063_399_999, ist)[0] + 1 == day_and_month_ms(1_796_063_400_000, ist)[0]
True
>>> london = ZoneInfo("Europe/London")  # BST ends 2026-10-25 01:00 UTC
>>> [day_and_month_ms(t, london)[0] - 739_914 for t in (1_792_889_999_999, 1_792_890_000_000)]
[0, 0]
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
#: ``date(1970, 1, 1).toordinal()``: day ordinals from epoch days.
_EPOCH_ORDINAL = 719_163
#: (zone, UTC hour) -> the zone's offset in ms through that hour; None when it
#: changes inside the hour. Emptied when it grows past this many hours.
_OFFSETS: dict[tuple[ZoneInfo, int], int | None] = {}
_OFFSETS_MAX = 100_000
#: Not in ``_OFFSETS`` (None is a cached answer there).
_MISSING: int | None = -(1 << 62)
#: day ordinal -> months since year 0.
_MONTHS: dict[int, int] = {}


def day_and_month(event_time: datetime, tz: ZoneInfo) -> tuple[int, int]:
    """Return (proleptic day ordinal, months since year 0) of the local date.

    Plain integers keep the state small and make "days before" a subtraction.
    """
    local = event_time.astimezone(tz).date()
    return local.toordinal(), local.year * 12 + local.month - 1


def _offset_ms(t_ms: int, tz: ZoneInfo) -> int:
    """The zone's UTC offset at ``t_ms`` (offsets change on whole seconds)."""
    offset = datetime.fromtimestamp(t_ms // 1000, tz).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset // _MS


def day_and_month_ms(t_ms: int, tz: ZoneInfo) -> tuple[int, int]:
    """``day_and_month`` of the instant ``t_ms`` (epoch milliseconds)."""
    key = (tz, t_ms // _HOUR_MS)
    offset = _OFFSETS.get(key, _MISSING)
    if offset is _MISSING:
        start = key[1] * _HOUR_MS
        first, last = _offset_ms(start, tz), _offset_ms(start + _HOUR_MS - 1, tz)
        if len(_OFFSETS) >= _OFFSETS_MAX:
            _OFFSETS.clear()
        offset = _OFFSETS[key] = first if first == last else None
    if offset is None:  # the hour of an offset change: this instant's own offset
        return day_and_month(_EPOCH + t_ms * _MS, tz)
    day = (t_ms + offset) // _DAY_MS + _EPOCH_ORDINAL
    month = _MONTHS.get(day)
    if month is None:
        month = _MONTHS[day] = month_of_day(day)
    return day, month


def month_of_day(day: int) -> int:
    local = date.fromordinal(day)
    return local.year * 12 + local.month - 1
