"""``upi-rewards simulate`` gives the numbers the pipeline gives, for the same feed and rules.

A feed goes through a real worker on a real broker; the summary made from
its output topics must equal the backtest's, read from the same topic
(``--from-topic``) and from a file of the same messages (``--input``). The
feed is keyed by payer, so each user's events are decided in one order
everywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from rewards.backtest import summary_of_outputs
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import values, wait_for_outputs
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 6000


def simulate(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "simulate", "--rules", str(DEFAULT_RULES), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_backtest_summary_equals_the_pipelines_outputs(broker, workers, tmp_path: Path):
    messages = list(generate(COUNT, seed=13, bad_share=0.02))
    prod = producer([broker.bootstrap])
    for m in messages:
        t = decode(m.value, Source("t", 0, 0))
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else m.key
        prod.send(topics.TRANSACTIONS, key=key or b"bad", value=m.value)
    prod.flush()
    workers.start()
    out = wait_for_outputs(broker.bootstrap, COUNT)

    # No crash here, so no record is repeated: every one counts, as in the backtest.
    decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
    grants = [orjson.loads(v) for v in values(out, topics.COIN_GRANTS)]
    assert len({g["grant_id"] for g in grants}) == len(grants)
    letters = len(out.records[topics.DEAD_LETTERS])
    pipeline = summary_of_outputs(decisions, grants, letters)
    assert pipeline["events"] + pipeline["dead_letters"] == COUNT
    assert pipeline["grants"] > 500 and pipeline["users_capped_daily"] > 0
    assert pipeline["coins_clawed_back"] > 0 and len(pipeline["by_rule"]) >= 2

    from_topic = tmp_path / "from-topic.json"
    simulate(
        "--from-topic",
        topics.TRANSACTIONS,
        "--bootstrap",
        broker.bootstrap,
        "--summary-json",
        str(from_topic),
    )
    assert json.loads(from_topic.read_text()) == {**pipeline, "baseline": None}

    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"".join((m.value or b"") + b"\n" for m in messages))
    from_file = tmp_path / "from-file.json"
    simulate("--input", str(feed), "--summary-json", str(from_file))
    assert json.loads(from_file.read_text()) == {**pipeline, "baseline": None}
