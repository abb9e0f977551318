"""Run table reads and writes as if inside one event of a batch.

Faust routes a table key to the partition of the *current event*; inside
``stream.take_events`` there is no per-event current event, so we set it for
each one (Faust's own stream iterator sets the same context variable). Without
this, a batch's writes would land in the changelog partition of whichever
event Faust saw last.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from faust.streams import _current_event
from faust.types import EventT


@contextmanager
def within_event(event: EventT[bytes]) -> Iterator[None]:
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
