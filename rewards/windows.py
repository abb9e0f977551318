"""Event-time arithmetic for the fraud windows, kept apart from any detector.

Times are integer epoch milliseconds: exact (no float), cheap to compare, and
small in state. A window of width ``w`` ending at ``t`` is the closed range
``[t - w, t]``; cooldowns and holds are half-open spans ``[start, end)``.

>>> w = 600_000
>>> in_window(0, 600_000, w), in_window(-1, 600_000, w)
(True, False)
>>> spans = Spans()
>>> spans.add(10, 20), spans.add(15, 30), spans.add(40, 50)
((10, 20), (10, 30), (40, 50))
>>> spans.covering(29), spans.covering(30), spans.covering(40)
((10, 30), None, (40, 50))
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: Spans kept per list at most; a farmer's spans merge into one, so this only
#: bounds hostile patterns (flags spread further apart than the cooldown).
MAX_SPANS = 64


_last: tuple[datetime | None, int] = (None, 0)


def epoch_ms(moment: datetime) -> int:
    # The same event's time is converted by the ledger and by the pair stage:
    # the last answer is kept (by identity; the reference keeps it alive).
    global _last
    last = _last
    if last[0] is moment:
        return last[1]
    ms = (moment - EPOCH) // _MS
    _last = (moment, ms)
    return ms


def from_ms(ms: int) -> datetime:
    return EPOCH + ms * _MS


def in_window(t: int, end: int, width: int) -> bool:
    """Is ``t`` inside the closed window of ``width`` ending at ``end``?"""
    return end - width <= t <= end


class Spans:
    """Disjoint, sorted half-open spans ``[start, end)``; overlapping ones merge."""

    __slots__ = ("items",)

    def __init__(self, items: list[list[int]] | None = None) -> None:
        self.items: list[list[int]] = items or []

    def covering(self, t: int) -> tuple[int, int] | None:
        i = bisect.bisect_right(self.items, [t, float("inf")]) - 1
        if i >= 0 and self.items[i][0] <= t < self.items[i][1]:
            return self.items[i][0], self.items[i][1]
        return None

    def add(self, start: int, end: int) -> tuple[int, int]:
        """Insert ``[start, end)``; return the merged span that now contains it."""
        if end <= start:
            return start, start
        keep: list[list[int]] = []
        for s, e in self.items:
            if e < start or s > end:
                keep.append([s, e])
            else:
                start, end = min(start, s), max(end, e)
        keep.append([start, end])
        keep.sort()
        self.items = keep
        return start, end

    def prune(self, before: int) -> None:
        """Forget spans that ended before ``before``; keep at most MAX_SPANS."""
        self.items = [s for s in self.items if s[1] >= before][-MAX_SPANS:]
