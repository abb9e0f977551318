"""The launcher's engine selection (no broker started here)."""

from __future__ import annotations

import pytest

from brokers.launcher import EmbeddedBroker, KafkaBroker, engine_from_env, make_broker


def test_engine_defaults_to_tansu(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("REWARDS_TEST_BROKER", raising=False)
    assert engine_from_env() == "tansu"


def test_engine_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REWARDS_TEST_BROKER", " Kafka ")
    assert engine_from_env() == "kafka"


def test_an_unknown_engine_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REWARDS_TEST_BROKER", "redpanda")
    with pytest.raises(ValueError, match="redpanda"):
        engine_from_env()
    with pytest.raises(ValueError, match="redpanda"):
        make_broker("redpanda")


def test_make_broker_builds_each_engine_unstarted():
    tansu, kafka = make_broker("tansu", port=1234), make_broker("kafka", port=1235)
    assert isinstance(tansu, EmbeddedBroker) and tansu.proc is None
    assert isinstance(kafka, KafkaBroker) and kafka.proc is None
    assert (tansu.bootstrap, kafka.bootstrap) == ("127.0.0.1:1234", "127.0.0.1:1235")
    assert kafka.engine == "kafka" and tansu.engine == "tansu"
