"""A real Prometheus scrapes a live worker; what it stored must match what the worker did.

Debian's ``prometheus`` (installed by ``tests.prom`` when missing) runs on
loopback with its own TSDB, a 1 s scrape of the worker's ``/metrics`` and the
shipped rules file. A generated feed goes through the real broker and worker;
the output topics are read back, and Prometheus' HTTP API must report the
same counts by outcome, dead-letter reason, coin kind and fraud rule. The
rules must evaluate cleanly against the real series, every dashboard query
must name a series Prometheus has, and the label set must stay small and free
of personal data.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from brokers.launcher import free_port
from rewards.rulebook import load_rules
from tests.integration.conftest import values, wait_for_outputs
from tests.prom import RULES, PrometheusServer, ensure_prometheus, promtool
from tests.unit.test_deploy import DASHBOARD, dashboard_metric_names
from tools.feed import produce_feed
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 4000
JOB = "upi-rewards"
#: Every label a rewards_* series may carry (target labels included).
ALLOWED_LABELS = {
    "instance",
    "job",
    "outcome",
    "kind",
    "reason",
    "rule",
    "le",
    "topic",
    "partition",
    "table",
    "version",
    "revision",
    "python_version",
    "stage",  # rewards_batch_seconds: ingest, decide, circular
    "phase",  # process, outputs, changelog, store, commit
    "generation",  # rewards_gc_pause_seconds: 0, 1, 2
}
#: A fixed set (labels are closed enums: tests/unit/test_metrics.py shows it does
#: not grow with users); 161 with one worker and this feed.
MAX_SERIES = 200


def eventually(read: Callable[[], Any], want: Any, timeout: float = 90.0) -> Any:
    """Poll until ``read()`` equals ``want``; Prometheus needs a scrape or two to catch up."""
    deadline = time.monotonic() + timeout
    got = read()
    while got != want:
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus has {got!r}, expected {want!r}")
        time.sleep(1.0)
        got = read()
    return got


def by(prom: PrometheusServer, label: str, promql: str) -> dict[str, float]:
    """A ``sum by (label)`` result as {label value: value}, zeros dropped."""
    out = {}
    for labels, value in prom.query(promql).items():
        if value:
            out[dict(labels).get(label, "")] = value
    return out


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_real_prometheus_scrape_matches_the_events_sent(broker, workers, tmp_path: Path):
    binaries = ensure_prometheus()
    if binaries is None:
        pytest.skip("prometheus is not installed and apt-get cannot be used (not root / no apt)")
    worker = workers.start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "static_configs": [{"targets": [f"127.0.0.1:{worker.web_port}"]}],
                    }
                ],
            }
        )
    )
    promtool(binaries, "check", "config", str(config))
    with PrometheusServer(binaries, config, tmp_path / "tsdb", port, tmp_path / "prom.log") as prom:
        eventually(
            lambda: prom.query(f'up{{job="{JOB}"}}').get(
                (("instance", f"127.0.0.1:{worker.web_port}"), ("job", JOB))
            ),
            1.0,
        )
        stats = produce_feed(
            [broker.bootstrap], count=COUNT, seed=23, bad_share=0.03, fraud_share=0.05
        )
        out = wait_for_outputs(broker.bootstrap, COUNT, timeout=240)

        decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
        letters = [orjson.loads(v) for v in values(out, topics.DEAD_LETTERS)]
        grants = [orjson.loads(v) for v in values(out, topics.COIN_GRANTS)]
        alerts = [orjson.loads(v) for v in values(out, topics.FRAUD_ALERTS)]
        assert len(decisions) == COUNT - stats.bad and len(letters) == stats.bad
        outcomes = dict(Counter(str(d["outcome"]) for d in decisions))
        reasons = dict(Counter(str(d["reason"]) for d in letters))
        coins: Counter[str] = Counter()
        for g in grants:
            coins[str(g["kind"])] += int(g["coins"])
        rules = dict(Counter(str(a["rule"]) for a in alerts))
        assert alerts, "the feed has farmers: expected some fraud alerts"

        f = f'{{job="{JOB}"}}'
        eventually(
            lambda: by(prom, "outcome", f"sum by (outcome) (rewards_events_total{f})"),
            {k: float(v) for k, v in outcomes.items()},
        )
        # Each total waits for a scrape after the last output (the outputs were read
        # after every stage committed, so the worker's counters are final).
        eventually(
            lambda: by(prom, "reason", f"sum by (reason) (rewards_dead_letters_total{f})"),
            {k: float(v) for k, v in reasons.items()},
        )
        eventually(
            lambda: by(prom, "kind", f"sum by (kind) (rewards_coins_total{f})"),
            {k: float(v) for k, v in coins.items()},
        )
        eventually(
            lambda: by(prom, "rule", f"sum by (rule) (rewards_fraud_alerts_total{f})"),
            {k: float(v) for k, v in rules.items()},
        )
        eventually(
            lambda: by(prom, "", f"sum(rewards_event_latency_seconds_count{f})"),
            {"": float(len(decisions))},
        )
        # The lag series was scraped (a worker fast enough shows no backlog at any
        # scrape, so its peak may be 0: only that it was there and never negative)...
        peak = by(prom, "", f"max_over_time(sum(rewards_consumer_lag_messages{f})[10m:1s])")
        present = prom.api("query", query=f"count(rewards_consumer_lag_messages{f})")
        assert present["result"], "no rewards_consumer_lag_messages series was scraped"
        assert peak.get("", 0.0) >= 0, peak
        # ...and then the committed offsets reached the end of every partition.
        eventually(lambda: by(prom, "", f"sum(rewards_consumer_lag_messages{f})"), {}, 60)
        assert by(prom, "topic", f"sum by (topic) (rewards_assigned_partitions{f})")
        assert by(prom, "", f"rewards_worker_ready{f}") == {"": 1.0}
        reexecuted = prom.query(f"rewards_worker_reexecutions{f}")
        assert list(reexecuted.values()) == [0.0], reexecuted  # scraped, and no fail-stop
        assert http_status(f"http://127.0.0.1:{worker.web_port}/readyz") == 200
        assert http_status(f"http://127.0.0.1:{worker.web_port}/healthz") == 200
        version = load_rules(DEFAULT_RULES).version
        assert by(prom, "version", f"rewards_rules_info{f}") == {version: 1.0}
        assert by(prom, "python_version", f"rewards_build_info{f}")
        assert by(prom, "table", f"sum by (table) (rewards_table_keys{f})")
        lag_s = by(prom, "", f"max(rewards_event_time_lag_seconds{f})")
        assert lag_s and lag_s[""] > 0

        # Bounded cardinality, no personal data in labels.
        series = prom.api("series", **{"match[]": '{__name__=~"rewards_.+"}'})
        assert 0 < len(series) <= MAX_SERIES, len(series)
        for s in series:
            assert set(s) - {"__name__"} <= ALLOWED_LABELS, s
            for key, value in s.items():
                if key == "revision":
                    continue  # a git sha: hex, may hold a run of digits
                assert "@" not in value and not re.search(r"\d{10}", value), s

        # The shipped rules load and evaluate against the real series.
        eventually(
            lambda: all(
                r["health"] == "ok" and r.get("lastEvaluation", "").startswith("20")
                for g in prom.api("rules")["groups"]
                for r in g["rules"]
            ),
            True,
            60,
        )
        firing = {a["labels"]["alertname"] for a in prom.api("alerts")["alerts"]}
        assert "RewardsWorkerDown" not in firing and "RewardsWorkersAbsent" not in firing

        print(
            f"Prometheus matched: {len(decisions)} decisions {outcomes}, {len(letters)} dead "
            f"letters, coins {dict(coins)}, fraud alerts {rules}; {len(series)} rewards_* "
            f"series; peak lag {peak.get('', 0.0):.0f}"
        )
        # Every series the dashboard draws exists in this Prometheus.
        names = set(prom.api("label/__name__/values"))
        missing = dashboard_metric_names(DASHBOARD) - names
        assert not missing, f"dashboard queries series Prometheus does not have: {missing}"
