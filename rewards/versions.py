"""Versions of the rules, each in force from its ``effective_from`` (event time).

The worker's ``--rules`` file is the first version; later versions come from
the compacted topic ``rewards.rules`` (``upi-rewards rules publish``). An event
is decided by the version with the latest ``effective_from`` at or before its
``event_time``, and by the first version when there is none: a pure function
of the event time and the versions known, so a replay decides as the first
pass did (docs/contracts.md, "Rules versions").

Every version shares the first version's ``timezone`` (the cap days and months)
and ``fraud`` section (the detectors' windows live in the user's state across
versions); a version that differs there is refused, as is one whose
``effective_from`` equals another's, and one that reuses a known ``version``
with other contents. A version known already, with the same contents, is a
no-op.

>>> from datetime import datetime
>>> from rewards.rulebook import parse_rules
>>> base = {"timezone": "Asia/Kolkata", "rules": []}
>>> v1 = parse_rules({**base, "version": "v1"})
>>> v2 = parse_rules({**base, "version": "v2", "effective_from": "2026-11-25T00:00:00+05:30"})
>>> versions = RuleVersions.of(v1).add(v2)
>>> versions.at(datetime.fromisoformat("2026-11-25T00:00:00+05:30")).version
'v2'
>>> versions.at(datetime.fromisoformat("2026-11-24T23:59:59.999+05:30")).version
'v1'
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rewards.errors import RulesError
from rewards.fraud import FraudConfig
from rewards.rulebook import RuleBook

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class VersionRefused(RulesError):
    """A version that cannot join the versions known (says why)."""


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


@dataclass(frozen=True, slots=True)
class RuleVersions:
    """The versions known, immutable; ``add`` returns a new object."""

    first: RuleBook
    #: versions with an ``effective_from``, by it; ``_starts`` their epoch µs
    _timed: tuple[RuleBook, ...] = ()
    _starts: tuple[int, ...] = ()

    @classmethod
    def of(cls, first: RuleBook, later: Iterable[RuleBook] = ()) -> RuleVersions:
        timed = (first,) if first.spec.effective_from is not None else ()
        starts = tuple(_us(b.spec.effective_from) for b in timed if b.spec.effective_from)
        versions = cls(first, timed, starts)
        for book in later:
            versions = versions.add(book)
        return versions

    @property
    def tz(self) -> ZoneInfo:
        return self.first.tz

    @property
    def fraud(self) -> FraudConfig:
        return self.first.fraud

    @property
    def books(self) -> tuple[RuleBook, ...]:
        """Every version: the first, then the others by ``effective_from``."""
        return (self.first, *(b for b in self._timed if b is not self.first))

    def get(self, version: str) -> RuleBook | None:
        return next((b for b in self.books if b.version == version), None)

    def at(self, event_time: datetime) -> RuleBook:
        """The version that decides an event of this time."""
        starts = self._starts
        if not starts:
            return self.first
        i = bisect.bisect_right(starts, _us(event_time))
        return self._timed[i - 1] if i else self.first

    def at_ms(self, t_ms: int) -> RuleBook:
        """``at`` for an epoch-millisecond time (the fraud flags carry those)."""
        starts = self._starts
        if not starts:
            return self.first
        i = bisect.bisect_right(starts, t_ms * 1000)
        return self._timed[i - 1] if i else self.first

    def check(self, book: RuleBook) -> bool:
        """May ``book`` join? False: known already, same contents. Raises VersionRefused."""
        spec = book.spec
        known = self.get(book.version)
        if known is not None:
            if known.spec == spec:
                return False
            raise VersionRefused(
                f"version {book.version!r} exists with other contents; versions are "
                "immutable: publish the change under a new version"
            )
        if spec.effective_from is None:
            raise VersionRefused(
                f"version {book.version!r}: effective_from: required for a version after the first"
            )
        first = self.first.spec
        if spec.timezone != first.timezone:
            raise VersionRefused(
                f"version {book.version!r}: timezone: {spec.timezone!r} differs from the first "
                f"version's {first.timezone!r} (cap days would move)"
            )
        if spec.fraud != first.fraud:
            raise VersionRefused(
                f"version {book.version!r}: fraud: differs from the first version's "
                f"{self.first.version!r} (the detectors keep one configuration)"
            )
        start = _us(spec.effective_from)
        for other in self._timed:
            assert other.spec.effective_from is not None
            if _us(other.spec.effective_from) == start:
                raise VersionRefused(
                    f"version {book.version!r}: effective_from: {spec.effective_from.isoformat()} "
                    f"is already version {other.version!r}'s"
                )
        return True

    def add(self, book: RuleBook) -> RuleVersions:
        """These versions and ``book`` (self when known already); raises VersionRefused."""
        if not self.check(book):
            return self
        assert book.spec.effective_from is not None
        start = _us(book.spec.effective_from)
        i = bisect.bisect_right(self._starts, start)
        return RuleVersions(
            self.first,
            (*self._timed[:i], book, *self._timed[i:]),
            (*self._starts[:i], start, *self._starts[i:]),
        )
