"""The README's main job, end to end, as a user runs it (smaller feed)."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest

from tests.integration.conftest import wait_for_outputs
from topologies import topics
from topologies.broker import engine_from_env, free_port

pytestmark = pytest.mark.integration


def test_demo_accounts_for_every_message_and_stops_cleanly():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "topologies.cli",
            "demo",
            "--engine",
            engine_from_env(),
            "--count",
            "3000",
            "--web-port",
            str(free_port()),
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"accounted for\s+: yes \(in 3,000 = decisions [\d,]+ \+ dead letters", out)
    assert re.search(r"throughput\s+: [\d,]+ events/s", out)
    assert 'rewards_events_total{outcome="GRANTED"}' in out
    assert "stopped broker and worker" in out


def test_feed_command_produces_the_requested_count(broker, workers):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "topologies.cli",
            "feed",
            "--count",
            "500",
            "--seed",
            "3",
            "--rate",
            "2000",
            "--bootstrap",
            broker.bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "produced 500 messages" in result.stdout
    workers.start()
    out = wait_for_outputs(broker.bootstrap, 500)
    decided = out.count(topics.DECISIONS) + out.count(topics.DEAD_LETTERS)
    assert decided == 500
    assert all(orjson.loads(v)["rules_version"] for _, v in out.records[topics.DECISIONS])
