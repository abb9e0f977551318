"""The worker's garbage-collection policy: freeze what survives, collect all rarely.

A worker's heap is almost all alive: the decoded-user cache, Faust's tables and
the batch in flight. CPython's collector walks it anyway: a young collection
walks every object allocated since the last one (the batch in flight, alive),
a gen-1 collection the survivors of ten of those. Measured on the pipeline
bench (200,000 events over 100,000 users, Tansu): 77-79 young and 7 gen-1
collections, ~4 s of a ~35 s run, that found ~8,000 garbage objects in all,
most of them the kafka-python admin client's start-up objects and one asyncio
transport per closed HTTP connection (docs/performance.md).

:class:`Freezer` moves every tracked object into CPython's permanent
generation (``gc.freeze()``, O(1): a list splice that also zeroes the young
count) every ``freeze_every_s``, so a young collection only ever walks what
was allocated since the last tick, and nothing reaches gen 1 or 2 to be walked
again. Objects that die are still freed by reference counting; only cyclic
garbage waits, in the permanent generation, for the full collection
(``gc.unfreeze()`` + ``gc.collect()``) every ``full_every_s``, which then
freezes the survivors again. The young threshold (``REWARDS_GC_GEN0``) stays
the safety net within a tick.

>>> import gc
>>> clock = iter([0.0, 0.1, 0.2, 5.0]).__next__
>>> f = Freezer(freeze_every_s=0.1, full_every_s=5.0, clock=clock)
>>> [f.tick() for _ in range(3)]
['freeze', 'freeze', 'full']
>>> gc.unfreeze()
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Literal


class Freezer:
    """Freeze the heap every ``freeze_every_s``; unfreeze and collect all every ``full_every_s``.

    ``full_every_s`` 0: never collect the permanent generation (a leak of cycles
    then only grows).
    """

    def __init__(
        self,
        freeze_every_s: float,
        full_every_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if freeze_every_s <= 0:
            raise ValueError("freeze_every_s must be > 0")
        self.freeze_every_s = freeze_every_s
        self.full_every_s = full_every_s
        self._clock = clock
        self._last_full = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> Literal["freeze", "full"]:
        """One step: a full collection when one is due, else a freeze."""
        now = self._clock()
        done: Literal["freeze", "full"] = "freeze"
        if self.full_every_s > 0 and now - self._last_full >= self.full_every_s:
            gc.unfreeze()
            gc.collect()
            self._last_full = now
            done = "full"
        gc.freeze()
        return done

    def start(self) -> None:
        """Tick on a daemon thread until :meth:`stop` (the process's exit ends it too)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="gc-freezer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and hand the frozen objects back to the collector."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        gc.unfreeze()

    def _run(self) -> None:
        while not self._stop.wait(self.freeze_every_s):
            self.tick()
