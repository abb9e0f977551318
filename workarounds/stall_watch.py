"""Fail-stop when Faust's consumer stops fetching an assigned stream partition.

The second line behind ``workarounds.seed_offsets`` (faust-streaming issue 629).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class StreamStalled(RuntimeError):
    """An assigned stream partition has records to read and made no progress for too long."""

    def __init__(self, topic: str, partition: int, behind: int, seconds: float) -> None:
        super().__init__(
            f"{topic}[{partition}]: {behind} records behind, no progress for {seconds:.0f}s"
        )


class StallWatch:
    """Fail-stop when an assigned stream partition stops moving while it has records.

    Faust's consumer was seen never to fetch a partition again after a broker
    stall (SIGSTOP) and once after a fail-over on Apache Kafka: the worker is
    ready, the partition is assigned and behind, and nothing is read, for good
    (faust-streaming issue 629). A worker that re-executes itself (state kept,
    a new consumer) reads it again. Fed every few seconds with each assigned
    partition's committed and end offsets while the worker is ready.
    """

    def __init__(self, limit_s: float, clock: Callable[[], float] | None = None) -> None:
        self.limit_s = limit_s
        self._clock = clock or time.monotonic
        self._since: dict[tuple[str, int], tuple[int, float]] = {}

    def check(self, positions: dict[tuple[str, int], tuple[int, int]]) -> StreamStalled | None:
        """``positions``: (topic, partition) -> (committed, end). The first stalled one, if any."""
        now = self._clock()
        for tp in list(self._since):
            if tp not in positions:
                del self._since[tp]
        for tp, (committed, end) in sorted(positions.items()):
            if end <= committed:
                self._since.pop(tp, None)
                continue
            seen = self._since.get(tp)
            if seen is None or seen[0] != committed:
                self._since[tp] = (committed, now)
            elif now - seen[1] > self.limit_s:
                return StreamStalled(tp[0], tp[1], end - committed, now - seen[1])
        return None

    def reset(self) -> None:
        """Not ready (a rebalance, a recovery): progress is not expected meanwhile."""
        self._since.clear()
