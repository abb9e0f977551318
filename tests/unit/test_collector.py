"""The worker's freeze-then-collect garbage policy (topologies/collector.py)."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from tests.unit.helpers import Clock
from topologies.collector import Freezer


class Node:
    """A cycle-capable object a weakref can watch."""

    def __init__(self) -> None:
        self.other: Node | None = None


def _garbage_cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_a_freeze_keeps_cycles_from_collections_until_the_full_one() -> None:
    clock = Clock()
    freezer = Freezer(freeze_every_s=0.1, full_every_s=10.0, clock=clock)
    cycle = _garbage_cycle()
    assert freezer.tick() == "freeze"
    assert gc.get_freeze_count() > 0
    gc.collect()  # walks nothing frozen
    assert cycle() is not None
    clock.t = 9.9
    assert freezer.tick() == "freeze"
    assert cycle() is not None
    clock.t = 10.0
    assert freezer.tick() == "full"
    assert cycle() is None
    assert gc.get_freeze_count() > 0  # the survivors frozen again


def test_full_every_zero_never_collects_the_frozen() -> None:
    clock = Clock()
    freezer = Freezer(freeze_every_s=0.1, full_every_s=0, clock=clock)
    cycle = _garbage_cycle()
    freezer.tick()
    clock.t = 1e9
    assert freezer.tick() == "freeze"
    gc.collect()
    assert cycle() is not None


def test_a_frozen_object_without_a_cycle_is_still_freed() -> None:
    freezer = Freezer(freeze_every_s=0.1, full_every_s=0, clock=Clock())
    node = Node()
    ref = weakref.ref(node)
    freezer.tick()
    del node
    assert ref() is None


def test_a_young_collection_after_a_freeze_walks_only_new_objects() -> None:
    kept = [[i] for i in range(100_000)]  # tracked, alive
    freezer = Freezer(freeze_every_s=0.1, full_every_s=0, clock=Clock())
    freezer.tick()
    frozen = gc.get_freeze_count()
    assert frozen >= len(kept)
    cycle = _garbage_cycle()
    assert gc.collect(0) >= 2  # the young cycle, found without the frozen heap
    assert cycle() is None
    assert gc.get_freeze_count() == frozen


def test_the_thread_ticks_and_stop_unfreezes() -> None:
    freezer = Freezer(freeze_every_s=0.01, full_every_s=0)
    freezer.start()
    deadline = time.monotonic() + 5
    while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc.get_freeze_count() > 0
    freezer.stop()
    assert gc.get_freeze_count() == 0


def test_freeze_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="freeze_every_s"):
        Freezer(freeze_every_s=0, full_every_s=1)
