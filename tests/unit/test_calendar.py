"""``day_and_month_ms`` (the ledger's per-event path) agrees with ``day_and_month``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rewards.calendar import day_and_month, day_and_month_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
ZONES = [
    "Asia/Kolkata",  # the launch rules' zone: +05:30, no changes since 1945
    "Asia/Kathmandu",  # +05:45
    "Europe/London",  # DST on the UTC hour
    "America/St_Johns",  # -03:30 / -02:30
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Apia",  # skipped a whole day (2011-12-30)
    "Asia/Tehran",  # +03:30, changed at local midnight (till 2022): inside a UTC hour
]


def _transitions(tz: ZoneInfo, start: int, end: int) -> list[int]:
    """Epoch ms of the offset changes in [start, end), found by bisection per hour."""
    found = []
    hour = 3_600_000
    for t in range(start, end, hour):
        a = datetime.fromtimestamp(t // 1000, tz).utcoffset()
        b = datetime.fromtimestamp((t + hour) // 1000, tz).utcoffset()
        if a == b:
            continue
        lo, hi = t, t + hour
        while hi - lo > 1000:
            mid = (lo + hi) // 2 // 1000 * 1000
            if datetime.fromtimestamp(mid // 1000, tz).utcoffset() == a:
                lo = mid
            else:
                hi = mid
        found.append(hi)
    return found


@pytest.mark.parametrize("zone", ZONES)
def test_same_day_and_month_as_the_datetime_path(zone: str) -> None:
    tz = ZoneInfo(zone)
    rng = random.Random(zone)
    start, end = 1_293_840_000_000, 1_861_920_000_000  # 2011 .. 2029
    instants = [rng.randrange(start, end) for _ in range(20_000)]
    changes = _transitions(tz, start, end)
    if zone not in {"Asia/Kolkata", "Asia/Kathmandu"}:  # fixed offsets since 1986
        assert changes, "the zone's offset changes must be exercised"
    for change in changes:
        instants += [change + d for d in (-3_600_001, -1_000, -1, 0, 1, 999, 1_000, 3_599_999)]
    # local midnights and month ends of the launch zone's calendar
    instants += [1_796_063_399_999, 1_796_063_400_000, 1_793_385_000_000 - 1]
    for t in instants:
        assert day_and_month_ms(t, tz) == day_and_month(EPOCH + t * MS, tz), (zone, t)
