"""Versions of the rules on ``rewards.rules``, with a real broker and real workers.

A worker runs with the launch rules; a second version, in force from inside
the feed's time range, is published with the CLI (``--backfill``: the feed is
history); then the feed goes in. Every grant and decision must equal the
oracle with both versions and carry the version in force at its event time,
also across a ``kill -9`` and restart mid-feed (the restarted worker reads the
topic before it decides anything).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
import yaml

from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tests.oracle import expected, expected_balances
from tools.feedgen import generate
from tools.topic_io import TopicTail, producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 8000
FESTIVE = "2026-11-20-festive"
#: The feed starts 2026-11-20 09:00 IST and runs for some hours of event time.
SWITCH = "2026-11-20T12:00:00+05:30"


def rules_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", "rules", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def festive_file(tmp: Path, **changes: object) -> Path:
    data = yaml.safe_load(DEFAULT_RULES.read_text())
    data.update(version=FESTIVE, effective_from=SWITCH)
    data["limits"] = {"daily_coins_per_user": 120, "monthly_coins_per_user": 2000}
    data["rules"][0]["reward"] = {"bps": 250, "max_coins": 80}
    data.update(changes)
    path = tmp / f"festive-{len(list(tmp.glob('festive-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def metric_labels(text: str, name: str) -> set[str]:
    return set(re.findall(rf'^{name}\{{version="([^"]+)"\}} 1\.0$', text, re.M))


def test_publish_refuses_a_changed_version_and_a_past_start_and_lists_the_versions(
    broker, tmp_path
):
    boot = ["--bootstrap", broker.bootstrap]
    path = festive_file(tmp_path)
    past = rules_cli("publish", str(path), *boot)
    assert past.returncode == 2 and "effective_from" in past.stderr and "--backfill" in past.stderr

    first = rules_cli("publish", str(path), "--backfill", *boot)
    assert first.returncode == 0, first.stderr
    again = rules_cli("publish", str(path), "--backfill", *boot)
    assert again.returncode == 0 and "no-op" in again.stdout

    changed = festive_file(tmp_path, limits={"daily_coins_per_user": 999})
    refused = rules_cli("publish", str(changed), "--backfill", *boot)
    assert refused.returncode == 2 and "immutable" in refused.stderr

    bad = festive_file(tmp_path, version="v-bad", limits={"daily_coin": 5})
    invalid = rules_cli("publish", str(bad), "--backfill", *boot)
    assert invalid.returncode == 2 and "limits.daily_coin" in invalid.stderr

    later = festive_file(tmp_path, version="2099-later", effective_from="2099-01-01T00:00:00Z")
    assert rules_cli("publish", str(later), *boot).returncode == 0

    listed = rules_cli("list", *boot)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [FESTIVE, "2099-later"]
    assert "in force now" in lines[1] and "in force now" not in lines[2]

    # Exactly one record per version on the topic: the no-op and the refusals wrote nothing.
    tail = TopicTail([broker.bootstrap], [topics.RULES])
    deadline = time.monotonic() + 30
    while tail.count(topics.RULES) < 2 and time.monotonic() < deadline:
        tail.poll()
    tail.poll(1000)
    keys = [k for k, _ in tail.records[topics.RULES]]
    tail.close()
    assert keys == [FESTIVE.encode(), b"2099-later"]


def test_a_version_published_to_a_running_worker_decides_its_events_across_a_restart(
    broker, workers, tmp_path
):
    first = workers.start()
    published = rules_cli(
        "publish", str(festive_file(tmp_path)), "--backfill", "--bootstrap", broker.bootstrap
    )
    assert published.returncode == 0, published.stderr
    deadline = time.monotonic() + 60
    while FESTIVE not in metric_labels(first.metrics(), "rewards_rules_info"):
        assert time.monotonic() < deadline, "the running worker never learned the new version"
        time.sleep(0.2)
    assert metric_labels(first.metrics(), "rewards_rules_in_force") == {FESTIVE}

    messages = list(generate(COUNT, seed=31))
    decoded = [decode(m.value, Source("t", 0, 0)) for m in messages]
    valid = [t for t in decoded if isinstance(t, Transaction)]
    assert valid[0].event_time.isoformat() < SWITCH < valid[-1].event_time.isoformat()
    prod = producer([broker.bootstrap])
    for m, t in zip(messages, decoded, strict=True):  # keyed by payer: the oracle's order
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else m.key
        prod.send(topics.TRANSACTIONS, key=key or b"bad", value=m.value)
    prod.flush()

    tail = TopicTail([broker.bootstrap], [topics.DECISIONS])
    deadline = time.monotonic() + 180
    while tail.count(topics.DECISIONS) < COUNT // 4:  # kill it a quarter of the way in
        assert time.monotonic() < deadline, "worker made no progress"
        tail.poll()
    tail.close()
    first.stop(signal.SIGKILL)
    second = workers.start(data_dir=first.data_dir)

    launch = load_rules(DEFAULT_RULES)
    festive = load_rules(festive_file(tmp_path))
    want = expected(valid, launch.spec, [festive.spec])
    assert {d.rules_version for d in want} == {launch.version, FESTIVE}
    want_decided = Counter((e.txn_id, e.outcome) for e in want)
    out = wait_for_outputs(broker.bootstrap, COUNT, timeout=300, decisions=want_decided)

    want_version = {(d.txn_id, d.outcome): d.rules_version for d in want}
    for d in map(orjson.loads, values(out, topics.DECISIONS)):
        assert d["rules_version"] == want_version[(d["txn_id"], d["outcome"])], d["txn_id"]

    grants: dict[str, dict[str, object]] = {}
    for value in values(out, topics.COIN_GRANTS):
        g = orjson.loads(value)
        assert grants.setdefault(g["grant_id"], g) == g, "a re-emitted grant must be a copy"
    want_grants = {g.grant_id: g for e in want for g in (*e.grants, *e.fraud_grants)}
    assert set(grants) == set(want_grants)
    per_version: Counter[str] = Counter()
    for grant_id, g in grants.items():
        w = want_grants[grant_id]
        assert (g["kind"], g["user_vpa"], g["coins"], g["cause_txn_id"], g["rules_version"]) == (
            w.kind,
            w.user_vpa,
            w.coins,
            w.cause_txn_id,
            w.rules_version,
        ), grant_id
        if g["kind"] == "GRANT":
            assert [(r["rule_id"], r["coins"]) for r in g["rules"]] == list(w.rules)  # type: ignore[attr-defined]
        per_version[str(g["rules_version"])] += 1
    assert per_version[launch.version] > 50 and per_version[FESTIVE] > 50, per_version
    balances: dict[str, int] = defaultdict(int)
    for g in grants.values():
        balances[str(g["user_vpa"])] += int(g["coins"]) * (1 if g["kind"] == "GRANT" else -1)  # type: ignore[call-overload]
    assert {u: b for u, b in balances.items() if b} == {
        u: b for u, b in expected_balances(want).items() if b
    }

    text = second.metrics()
    assert metric_labels(text, "rewards_rules_info") == {launch.version, FESTIVE}
    assert metric_labels(text, "rewards_rules_in_force") == {FESTIVE}
