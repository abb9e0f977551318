"""A worker's log as a platform ships it: REWARDS_LOG_FORMAT=json, one object a line,
Faust's records and ours alike, and no VPA from the feed in any of them."""

from __future__ import annotations

import json
import signal
from datetime import datetime

import orjson
import pytest

from tests.integration.conftest import wait_for_outputs
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics

pytestmark = pytest.mark.integration

COUNT = 2000


def test_json_logs_are_one_object_a_line_with_no_personal_data(broker, workers):
    messages = list(generate(COUNT, seed=5, bad_share=0.02))
    vpas: set[str] = set()
    for m in messages:
        try:
            doc = orjson.loads(m.value or b"")
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict):
            vpas.update(str(doc[f]) for f in ("payer_vpa", "payee_vpa") if doc.get(f))
    assert len(vpas) > 50
    worker = workers.start(env={"REWARDS_LOG_FORMAT": "json"})
    prod = producer([broker.bootstrap])
    for m in messages:
        prod.send(topics.TRANSACTIONS, key=m.key, value=m.value)
    prod.flush()
    wait_for_outputs(broker.bootstrap, COUNT)
    assert worker.stop(signal.SIGTERM) == 0

    text = worker.log_text()
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for line in lines:
        doc = json.loads(line)  # every line, Faust's included, is one JSON object
        assert isinstance(doc, dict), line
        assert {"time", "level", "logger", "message"} <= doc.keys(), line
        assert datetime.fromisoformat(doc["time"]).utcoffset() is not None, line
        records.append(doc)
    loggers = {str(r["logger"]) for r in records}
    assert "topologies.worker" in loggers  # the banner
    assert any(name.split(".")[0] in {"faust", "mode", "aiokafka"} for name in loggers), loggers
    leaked = sorted(v for v in vpas if v.lower() in text.lower())
    assert not leaked, f"{len(leaked)} VPAs in the log"
