"""The worker's metrics: bounded label sets, no personal data, readiness logic.

The number of series must not depend on how many users, payees or payments
go through: a label that carried a VPA or txn id would grow without bound and
leak personal data into the monitoring system. These tests drive the real
core and the decide stage's metric hook over two feeds of very different
size and compare the series.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry

from agents.decide import _observe
from agents.metrics import Metrics
from rewards.ledger import Effects, replay
from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.decision import Outcome
from schemas.fraud_alert import FraudRule
from schemas.grant import GrantKind
from tools.feedgen import generate
from topologies import health
from topologies.settings import DEFAULT_RULES

CLOSED = {
    "outcome": {o.value for o in Outcome},
    "kind": {k.value for k in GrantKind},
    "reason": {r.value for r in DeadLetterReason},
    "rule": {r.value for r in FraudRule},
    "generation": {"0", "1", "2"},
}


def series(registry: CollectorRegistry) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {
        (s.name, tuple(sorted(s.labels.items())))
        for family in registry.collect()
        for s in family.samples
    }


def run_feed(count: int, seed: int, users: int | None = None) -> tuple[CollectorRegistry, int]:
    registry, users_seen, _ = run_feed_with_effects(count, seed, users)
    return registry, users_seen


def run_feed_with_effects(
    count: int, seed: int, users: int | None = None
) -> tuple[CollectorRegistry, int, tuple[list[Effects], list[DeadLetter], int]]:
    """Decode a generated feed, decide it with the core, record metrics as decide does.

    Also returns the core's own effects, the dead letters and the message count,
    so that the metrics can be compared with what actually happened.
    """
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.set_info("test", health.build_labels())
    registry.register(health.WorkerCollector(None))
    book = load_rules(DEFAULT_RULES)
    txns = []
    letters: list[DeadLetter] = []
    messages = 0
    for i, message in enumerate(
        generate(count, seed, bad_share=0.05, fraud_share=0.05, users=users)
    ):
        messages += 1
        result = decode(message.value, Source("upi.transactions", 0, i))
        if isinstance(result, DeadLetter):
            metrics.dead_letters.labels(reason=result.reason.value).inc()
            letters.append(result)
        else:
            txns.append(result)
    txns.sort(key=lambda t: t.payer_vpa)  # one worker sees a user's events in order
    effects, _ = replay(txns, book)
    now = time.time_ns()
    _observe(metrics, [(e, now) for e in effects])
    users = len({t.payer_vpa for t in txns})
    return registry, users, (effects, letters, messages)


def test_series_do_not_grow_with_users_or_payments():
    small, small_users = run_feed(600, seed=1, users=20)
    large, large_users = run_feed(6000, seed=2, users=2000)
    assert large_users > 5 * small_users
    assert series(small) == series(large)
    assert len(series(large)) < 120


def test_labels_are_closed_sets_without_personal_data():
    registry, _ = run_feed(2000, seed=3)
    allowed = set(CLOSED) | {"le", "version", "revision", "python_version"}
    for name, labels in series(registry):
        for key, value in labels:
            assert key in allowed, (name, key)
            if key in CLOSED:
                assert value in CLOSED[key], (name, key, value)
            assert "@" not in value, (name, key, value)


def test_counters_add_up_to_the_core_outcomes():
    """Each counter against what the core and the validator actually produced (counted
    here from the effects, not from another metric the same call filled)."""
    registry, _, (effects, letters, messages) = run_feed_with_effects(1500, seed=4)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    outcomes = Counter(e.decision.outcome.value for e in effects if e.decision is not None)
    assert len(outcomes) >= 4 and letters  # the feed exercises several outcomes and rejects
    for outcome in Outcome:
        assert value("rewards_events_total", outcome=outcome.value) == outcomes[outcome.value]
    coins: Counter[str] = Counter()
    for e in effects:
        for g in e.grants:
            coins[g.kind.value] += g.coins
    assert coins["GRANT"] > 0
    for kind in GrantKind:
        assert value("rewards_coins_total", kind=kind.value) == coins[kind.value]
    reasons = Counter(d.reason.value for d in letters)
    for reason in DeadLetterReason:
        assert value("rewards_dead_letters_total", reason=reason.value) == reasons[reason.value]
    rules = Counter(a.rule.value for e in effects for a in e.alerts)
    for rule in FraudRule:
        assert value("rewards_fraud_alerts_total", rule=rule.value) == rules[rule.value]
    decided = sum(outcomes.values())
    # The invariant, from the metrics: messages in = decisions + dead letters.
    assert decided + sum(reasons.values()) == messages == 1500
    assert value("rewards_event_latency_seconds_count") == decided > 0


def test_event_time_lag_follows_the_newest_event():
    metrics = Metrics(CollectorRegistry())
    assert math.isnan(metrics.newest_event_s)
    metrics.saw_event_time(None)
    assert math.isnan(metrics.newest_event_s)
    t1 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
    t0 = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    metrics.saw_event_time(t1)
    metrics.saw_event_time(t0)  # older: ignored
    assert metrics.newest_event_s == t1.timestamp()
    lag = metrics.registry.get_sample_value("rewards_event_time_lag_seconds")
    assert lag is not None and abs(lag - (time.time() - t1.timestamp())) < 5


def test_info_gauges_hold_one_series_each():
    metrics = Metrics(CollectorRegistry())
    metrics.set_info("v1", {"version": "0.1.0", "revision": "abc", "python_version": "3.11"})
    metrics.set_info("v2", {"version": "0.1.0", "revision": "abc", "python_version": "3.11"})
    reg = metrics.registry
    assert reg.get_sample_value("rewards_rules_info", {"version": "v2"}) == 1
    assert reg.get_sample_value("rewards_rules_info", {"version": "v1"}) is None


def _app(**kw: Any) -> faust.App:
    """A stand-in for the few Faust app attributes readiness reads."""
    tp = TP("upi.transactions", 0)
    changelog = TP("upi-rewards-user-state-changelog", 0)
    assigned = kw.pop("assigned", {tp, changelog})
    done = kw.pop("recovered", True)
    consumer = SimpleNamespace(assignment=lambda: assigned, highwater=lambda tp: 10,
                               _committed_offset={tp: 4})  # fmt: skip
    completed = SimpleNamespace(is_set=lambda: done)
    tables = SimpleNamespace(
        changelog_topics={"upi-rewards-user-state-changelog"},
        recovery=SimpleNamespace(completed=completed),
        items=lambda: [],
    )
    base = dict(_consumer=consumer, rebalancing=False, in_recovery=False, tables=tables)
    base.update(kw)
    return cast(faust.App, SimpleNamespace(**base))


def test_readiness_needs_partitions_no_rebalance_and_recovered_tables():
    assert health.readiness(_app()).ready
    assert not health.readiness(_app(_consumer=None)).ready
    assert health.readiness(_app(rebalancing=True)).why == "rebalancing"
    assert health.readiness(_app(in_recovery=True)).why == "recovering tables"
    assert health.readiness(_app(recovered=False)).why == "recovering tables"
    only_changelog = {TP("upi-rewards-user-state-changelog", 0)}
    assert health.readiness(_app(assigned=only_changelog)).why == "no partitions assigned"


def test_collector_reports_lag_per_stream_partition_only():
    registry = CollectorRegistry()
    registry.register(health.WorkerCollector(_app()))
    assert (
        registry.get_sample_value(
            "rewards_consumer_lag_messages", {"topic": "upi.transactions", "partition": "0"}
        )
        == 6
    )
    lags = [s for f in registry.collect() for s in f.samples
            if s.name == "rewards_consumer_lag_messages"]  # fmt: skip
    assert len(lags) == 1
    assert registry.get_sample_value("rewards_worker_ready") == 1


def test_lag_takes_the_larger_of_fetch_highwater_and_listed_end_offset():
    """A paused partition's fetch highwater freezes; ListOffsets keeps lag honest."""
    ends = health.EndOffsets(["127.0.0.1:9"])
    ends.latest = {("upi.transactions", 0): 25}
    registry = CollectorRegistry()
    registry.register(health.WorkerCollector(_app(), ends))
    labels = {"topic": "upi.transactions", "partition": "0"}
    assert registry.get_sample_value("rewards_consumer_lag_messages", labels) == 21
    ends.latest = {("upi.transactions", 0): 2}  # an undercounting broker: fetch wins
    assert registry.get_sample_value("rewards_consumer_lag_messages", labels) == 6


def test_every_garbage_collection_is_timed_by_generation():
    import gc

    metrics = Metrics(CollectorRegistry())
    before = list(gc.callbacks)
    metrics.watch_gc()
    metrics.watch_gc()  # once only
    try:
        assert len(gc.callbacks) == len(before) + 1
        gc.collect()
        gc.collect(0)
    finally:
        gc.callbacks[:] = before
    registry = metrics.registry
    full = registry.get_sample_value("rewards_gc_pause_seconds_count", {"generation": "2"})
    young = registry.get_sample_value("rewards_gc_pause_seconds_count", {"generation": "0"})
    assert full is not None and full >= 1 and young is not None and young >= 1
    assert (registry.get_sample_value("rewards_gc_pause_seconds_sum", {"generation": "2"}) or 0) > 0
