"""The worker's Prometheus metrics.

Labels are closed enums only (outcome, grant kind, dead-letter reason): no VPA,
txn id or other personal data ever becomes a label, and cardinality is bounded.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from schemas.dead_letter import DeadLetterReason
from schemas.decision import Outcome
from schemas.fraud_alert import FraudRule
from schemas.grant import GrantKind

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
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
        self.replays_skipped = Counter(
            "rewards_replays_skipped_total",
            "Feed messages seen again after a crash or rebalance and skipped, because "
            "their outputs were already acknowledged.",
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
