"""The rules topic's records, the refusals made before the broker, and the live versions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from agents.metrics import Metrics
from agents.rules_feed import LiveRules, decode_version, encode_version
from rewards.rulebook import load_rules, parse_rules
from tools.campaigns import publish
from topologies.settings import DEFAULT_RULES

NOW = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)  # 12:00 IST
NOWHERE = ["127.0.0.1:9"]  # never reached: these refusals come first


def version_file(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(DEFAULT_RULES.read_text())
    data.update(changes)
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_record_is_the_rules_file_as_json_and_reads_back_the_same(tmp_path):
    book = load_rules(version_file(tmp_path, effective_from="2026-11-25T12:00:00+05:30"))
    again = decode_version(encode_version(book), "rewards.rules:0:7")
    assert again.spec == book.spec and again.version == book.version
    assert again.spec.effective_from == datetime(2026, 11, 25, 6, 30, tzinfo=UTC)


def test_publish_refuses_a_missing_or_past_effective_from_without_backfill(tmp_path):
    code, message = publish(version_file(tmp_path), NOWHERE, now=lambda: NOW)
    assert code == 2 and "effective_from: required" in message
    past = version_file(tmp_path, version="v2", effective_from="2026-11-25T11:59:59.999+05:30")
    code, message = publish(past, NOWHERE, now=lambda: NOW)
    assert code == 2 and "before now" in message and "--backfill" in message
    invalid = version_file(tmp_path, version="v2", effective_from="2026-11-26T00:00:00")
    code, message = publish(invalid, NOWHERE, now=lambda: NOW)
    assert code == 2 and "effective_from" in message and "offset" in message


def test_live_rules_add_versions_leave_out_bad_ones_and_show_them_in_metrics():
    reg = CollectorRegistry()
    metrics = Metrics(reg)
    first = load_rules(DEFAULT_RULES)
    live = LiveRules(first, metrics)
    data = first.spec.model_dump(mode="json", exclude_none=True)
    v2 = parse_rules({**data, "version": "v2", "effective_from": "2026-11-25T12:00:00+05:30"})
    assert live.offer(encode_version(v2), "rewards.rules:0:0")
    assert live.offer(encode_version(v2), "rewards.rules:0:1")  # the same again: no-op
    changed = parse_rules({**data, "version": "v2", "effective_from": "2026-11-26T00:00:00Z"})
    assert not live.offer(encode_version(changed), "rewards.rules:0:2")
    assert not live.offer(b"{not json", "rewards.rules:0:3")
    assert not live.offer(None, "rewards.rules:0:4")
    assert not live.offer(b'{"version": "v3"}', "rewards.rules:0:5")
    assert live.refused == 4 and reg.get_sample_value("rewards_rules_refused_total") == 4
    assert [b.version for b in live.versions.books] == [first.version, "v2"]

    def sample(name: str, version: str) -> float | None:
        return reg.get_sample_value(name, {"version": version})

    live.refresh_metrics(datetime(2026, 11, 25, 6, 29, 59, tzinfo=UTC))
    assert sample("rewards_rules_info", first.version) == 1
    assert sample("rewards_rules_info", "v2") == 1
    assert sample("rewards_rules_in_force", first.version) == 1
    assert sample("rewards_rules_in_force", "v2") is None
    live.refresh_metrics(NOW)
    assert sample("rewards_rules_in_force", "v2") == 1
    assert sample("rewards_rules_in_force", first.version) is None
