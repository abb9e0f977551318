"""The installed CLI as a user runs it: rules validation stops startup clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_check_rules_accepts_the_shipped_rules():
    result = run("check-rules", str(DEFAULT_RULES))
    assert result.returncode == 0, result.stderr
    assert "2026-11-launch" in result.stdout
    assert "3 rules" in result.stdout


def test_check_rules_names_the_bad_field(tmp_path: Path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(DEFAULT_RULES.read_text().replace("max_coins: 50", "max_coin: 50"))
    result = run("check-rules", str(bad))
    assert result.returncode == 2
    assert "rules[0].reward.max_coin" in result.stderr
    assert "Extra inputs are not permitted" in result.stderr


def test_worker_refuses_to_start_on_invalid_rules(tmp_path: Path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        DEFAULT_RULES.read_text().replace('timezone: "Asia/Kolkata"', "timezone: Mars/Olympus")
    )
    # No broker needed: the rules are checked before anything connects.
    result = run("worker", "--rules", str(bad), "--bootstrap", "127.0.0.1:1")
    assert result.returncode == 2
    assert "timezone" in result.stderr and "Mars/Olympus" in result.stderr


def test_worker_refuses_to_start_on_an_unreadable_tokens_file(tmp_path: Path):
    import os

    env = {**os.environ, "REWARDS_API_TOKENS_FILE": str(tmp_path / "missing")}
    result = run("worker", "--bootstrap", "127.0.0.1:1", env=env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "API tokens file" in result.stderr and "missing" in result.stderr
