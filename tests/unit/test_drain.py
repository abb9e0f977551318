"""Faust's fetch loop delivers a record in the step it is read, unless delivery could wait."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agents.metrics import Metrics
from rewards.rulebook import load_rules
from topologies.app import build_app
from topologies.settings import DEFAULT_RULES, Settings
from workarounds import drain


def _consumer(tmp_path: Path, **settings: Any) -> Any:
    app = build_app(
        Settings(data_dir=tmp_path, **settings),
        load_rules(DEFAULT_RULES),
        Metrics(CollectorRegistry()),
    )
    return app.consumer


def test_the_worker_installs_it(tmp_path: Path) -> None:
    _consumer(tmp_path)
    assert drain.installed()


def test_a_setting_turns_it_off(tmp_path: Path) -> None:
    _consumer(tmp_path, direct_delivery=False)
    try:
        assert not drain.installed()
    finally:
        drain.install()


def test_a_delivery_that_cannot_wait_takes_no_loop_turn(tmp_path: Path) -> None:
    async def run() -> tuple[list[str], Any]:
        consumer = _consumer(tmp_path)
        consumer.app.flow_control.resume()
        order: list[str] = []

        async def other() -> None:
            order.append("other stage")

        async def deliver() -> str:
            order.append("delivered")
            return "ok"

        task = asyncio.ensure_future(other())
        result = await consumer.wait_first(deliver(), consumer.suspend_flow.wait())
        order.append("returned")
        await task
        return order, result

    order, result = asyncio.run(run())
    # Faust's own path runs the other task before the delivery returns (four tasks).
    assert order == ["delivered", "returned", "other stage"]
    assert result.results == ["ok"] and not result.stopped


def test_faust_path_while_the_flow_is_suspended(tmp_path: Path) -> None:
    async def run() -> Any:
        consumer = _consumer(tmp_path)
        consumer.app.flow_control.resume()
        consumer.suspend_flow.set()  # a rebalance is starting
        blocked = asyncio.Event()

        async def deliver() -> None:
            await blocked.wait()  # would wait for ever

        return await asyncio.wait_for(
            consumer.wait_first(deliver(), consumer.suspend_flow.wait()), 5
        )

    result = asyncio.run(run())
    assert result.results == [True]  # the suspension won; the delivery was abandoned


def test_conditions(tmp_path: Path) -> None:
    consumer = _consumer(tmp_path)
    app = consumer.app
    assert not drain.delivery_cannot_wait(consumer)  # flow control starts suspended
    app.flow_control.resume()
    assert drain.delivery_cannot_wait(consumer)
    consumer.suspend_flow.set()
    assert not drain.delivery_cannot_wait(consumer)
    consumer.suspend_flow.clear()
    app.producer.buffer.max_messages = -1  # "over its limit"
    assert not drain.delivery_cannot_wait(consumer)


def test_a_full_stream_queue_takes_faust_path(tmp_path: Path) -> None:
    class Full:
        @staticmethod
        def full() -> bool:
            return True

    class Topic:
        queue = Full()

    consumer = _consumer(tmp_path)
    consumer.app.flow_control.resume()
    assert drain.delivery_cannot_wait(consumer)
    consumer.app.topics._topics.add(Topic())
    assert not drain.delivery_cannot_wait(consumer)
