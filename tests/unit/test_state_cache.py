"""The decide stage's cache of decoded records (agents/store.py StateCache)."""

from __future__ import annotations

from agents.store import StateCache


def test_hits_until_the_generation_changes_and_evicts_the_least_recent():
    generation = [1]
    cache = StateCache(2, lambda: generation[0])
    assert cache.get(b"a") is None  # first look: the generation is noted
    cache.put(b"a", "A", b"a1")
    cache.put(b"b", "B", b"b1")
    assert cache.get(b"a") == ("A", b"a1")  # a is now the most recent
    cache.put(b"c", "C", b"c1")  # evicts b
    assert cache.get(b"b") is None and cache.get(b"c") == ("C", b"c1")
    generation[0] = 2  # a rebalance: Faust may have written the store
    assert cache.get(b"a") is None and cache.get(b"c") is None


def test_a_put_across_a_rebalance_is_dropped_and_size_0_keeps_nothing():
    generation = [1]
    cache = StateCache(10, lambda: generation[0])
    cache.get(b"x")
    generation[0] = 2  # the batch's commit finished after a rebalance began
    cache.put(b"x", "X", b"x1")
    assert cache.get(b"x") is None
    off = StateCache(0, lambda: 1)
    off.get(b"x")
    off.put(b"x", "X", b"x1")
    assert off.get(b"x") is None
