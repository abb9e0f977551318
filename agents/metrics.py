"""The worker's Prometheus metrics.

Labels are closed enums only (outcome, grant kind, dead-letter reason, fraud
rule), or values fixed for the process (rules version, build): no VPA, txn id
or other personal data ever becomes a label, and cardinality is bounded
(tests/unit/test_metrics.py asserts both). Gauges that read the Faust
consumer and the tables at scrape time live in ``topologies.health``.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, Summary

from schemas.dead_letter import DeadLetterReason
from schemas.decision import Outcome
from schemas.fraud_alert import FraudRule
from schemas.grant import GrantKind

GC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        #: Newest event_time (epoch seconds) decided by this worker; NaN until one is.
        self.newest_event_s = math.nan
        self.events = Counter(
            "rewards_events_total",
            "Valid input events decided, by decision outcome.",
            ["outcome"],
            registry=registry,
        )
        self.coins = Counter(
            "rewards_coins_total",
            "Coins emitted to the wallet, by kind (GRANT or CLAWBACK).",
            ["kind"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "rewards_dead_letters_total",
            "Input messages rejected to the dead-letter topic, by reason code.",
            ["reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "rewards_event_latency_seconds",
            "Seconds from the worker ingesting a feed message to its decision being "
            "acknowledged by the broker.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_seconds = Summary(
            "rewards_batch_seconds",
            "Seconds per batch of a stage, by phase: process (decode, decide, encode), "
            "outputs (until the broker acked every output), changelog (until it acked the "
            "state records), store (the local write batch), commit (input offsets, edge).",
            ["stage", "phase"],
            registry=registry,
        )
        self.replays_skipped = Counter(
            "rewards_replays_skipped_total",
            "Feed messages seen again after a crash or rebalance and skipped, because "
            "their outputs were already acknowledged.",
            registry=registry,
        )
        self.input_offset_gaps = Counter(
            "rewards_input_offset_gaps_total",
            "Records missing between two consecutive deliveries of one input partition "
            "(REWARDS_FEED_OFFSET_GAPS=count on the feed; elsewhere the worker fail-stops).",
            ["topic"],
            registry=registry,
        )
        self.fraud_alerts = Counter(
            "rewards_fraud_alerts_total",
            "Fraud alerts raised on users, by detector rule.",
            ["rule"],
            registry=registry,
        )
        self.late_events = Counter(
            "rewards_late_events_total",
            "Payments older than the user's newest event by more than the largest fraud "
            "window: decided, but kept out of the fraud windows.",
            registry=registry,
        )
        # Pre-create every label value so dashboards see zeros, not gaps.
        for outcome in Outcome:
            self.events.labels(outcome=outcome.value)
        for kind in GrantKind:
            self.coins.labels(kind=kind.value)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason=reason.value)
        for rule in FraudRule:
            self.fraud_alerts.labels(rule=rule.value)
        self.api_requests = Counter(
            "rewards_api_requests",
            "Requests to the per-user API (/v1/*) by endpoint, HTTP status and route "
            "(local: answered from this worker's state; forwarded: asked of the owner).",
            ["endpoint", "status", "route"],
            registry=registry,
        )
        self.rules_info = Gauge(
            "rewards_rules_info",
            "Always 1; one series per rules version this worker knows (its --rules file "
            "and the versions read from rewards.rules).",
            ["version"],
            registry=registry,
        )
        self.rules_in_force = Gauge(
            "rewards_rules_in_force",
            "Always 1; the label names the rules version in force now (wall clock): the "
            "one deciding events of this moment.",
            ["version"],
            registry=registry,
        )
        self.rules_refused = Counter(
            "rewards_rules_refused_total",
            "Records of rewards.rules left out by this worker: not a valid rules file, or a "
            "version that cannot join (other contents under a known version, another "
            "timezone or fraud section, a start another version has); the log says which.",
            registry=registry,
        )
        self.gc_pause = Histogram(
            "rewards_gc_pause_seconds",
            "Wall seconds of each garbage collection in the worker process, by generation: "
            "while one runs, every stage and request of the process waits.",
            ["generation"],
            buckets=GC_BUCKETS,
            registry=registry,
        )
        self._gc_watched = False
        self.build_info = Gauge(
            "rewards_build_info",
            "Always 1; labels name the worker's package version, git revision and Python.",
            ["version", "revision", "python_version"],
            registry=registry,
        )
        self.reexecutions = Gauge(
            "rewards_worker_reexecutions",
            "Times this worker process has re-executed itself after a fail-stop "
            "(agents.guard): each one replayed from the last commit, so outputs from "
            "before it may have been sent again, as exact copies.",
            registry=registry,
        )
        self.newest_event_time = Gauge(
            "rewards_newest_event_time_seconds",
            "Event time (Unix seconds) of the newest event this worker has decided; "
            "NaN before the first one.",
            registry=registry,
        )
        self.newest_event_time.set_function(lambda: self.newest_event_s)
        self.event_time_lag = Gauge(
            "rewards_event_time_lag_seconds",
            "Wall clock minus the newest decided event time: how far behind the bank's "
            "clock this worker's decisions are. NaN before the first event.",
            registry=registry,
        )
        self.event_time_lag.set_function(lambda: time.time() - self.newest_event_s)

    def timing(self, stage: str) -> Callable[[str, float], None]:
        """Observe one stage's batch phases (``agents.checkpoint``)."""
        children: dict[str, Any] = {}

        def observe(phase: str, seconds: float) -> None:
            child = children.get(phase)
            if child is None:
                child = children[phase] = self.batch_seconds.labels(stage=stage, phase=phase)
            child.observe(seconds)

        return observe

    def saw_event_time(self, newest: datetime | None) -> None:
        """Once per batch with the batch's newest event time, so the cost is one max."""
        if newest is not None:
            t = newest.timestamp()
            if not t <= self.newest_event_s:  # also true while newest_event_s is NaN
                self.newest_event_s = t

    def watch_gc(self) -> None:
        """Time every garbage collection of this process into ``gc_pause`` (once)."""
        if self._gc_watched:
            return
        self._gc_watched = True
        started = [0.0]
        pauses = {g: self.gc_pause.labels(generation=str(g)) for g in range(3)}

        def timed(phase: str, info: dict[str, int]) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                pauses[info["generation"]].observe(time.perf_counter() - started[0])

        gc.callbacks.append(timed)

    def set_info(self, rules_version: str, build: dict[str, str]) -> None:
        """One series each: a rules change or a deploy shows up as a new label value."""
        self.set_rules([rules_version], rules_version)
        self.build_info.clear()
        self.build_info.labels(**build).set(1)

    def set_rules(self, versions: list[str], in_force: str) -> None:
        """Every version known (``rewards_rules_info``) and the one in force now."""
        known = {labels[0] for labels in self._label_values(self.rules_info)}
        for gone in known - set(versions):
            self.rules_info.remove(gone)
        for version in versions:
            self.rules_info.labels(version=version).set(1)
        if {labels[0] for labels in self._label_values(self.rules_in_force)} != {in_force}:
            self.rules_in_force.clear()
            self.rules_in_force.labels(version=in_force).set(1)

    @staticmethod
    def _label_values(gauge: Gauge) -> list[tuple[str, ...]]:
        return [
            tuple(sample.labels.values()) for metric in gauge.collect() for sample in metric.samples
        ]
