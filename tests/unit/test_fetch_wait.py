"""The worker's consumer waits at the broker as long as the setting says, not Faust's 1.5 s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agents.metrics import Metrics
from rewards.rulebook import load_rules
from topologies.app import build_app
from topologies.settings import DEFAULT_RULES, Settings


@pytest.mark.parametrize("wait_ms", [0, 100, 1500])
def test_consumer_gets_the_configured_fetch_wait(tmp_path: Path, wait_ms: int) -> None:
    async def made() -> int:
        settings = Settings(fetch_max_wait_ms=wait_ms, data_dir=tmp_path)
        app = build_app(settings, load_rules(DEFAULT_RULES), Metrics(CollectorRegistry()))
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        try:
            return int(consumer._fetch_max_wait_ms)
        finally:
            await consumer.stop()  # never started: closes the client it made

    assert asyncio.run(made()) == wait_ms


def test_default_is_short() -> None:
    # Tansu holds a fetch for the whole wait: each stage adds up to this much.
    assert Settings().fetch_max_wait_ms <= 100
