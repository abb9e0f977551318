"""The launcher's engine selection (no broker started here)."""

from __future__ import annotations

from pathlib import Path

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


def test_the_kafka_controller_never_gets_the_client_port(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """free_port released the client port, so the kernel may hand it out again: the
    controller listener must not take it (Kafka exits: two listeners on one port)."""
    from brokers import launcher

    template = tmp_path / "template"
    (template / "data").mkdir(parents=True)
    monkeypatch.setattr(launcher, "_formatted_template", lambda heap: template)
    offered = iter([9301, 9301, 9302])
    monkeypatch.setattr(launcher, "free_port", lambda host="127.0.0.1": next(offered))
    broker = launcher.KafkaBroker(port=9301)
    try:
        broker.prepare()
        assert broker.controller_port == 9302
        assert broker.workdir is not None
        props = (broker.workdir / "server.properties").read_text()
        assert "PLAINTEXT://127.0.0.1:9301,CONTROLLER://127.0.0.1:9302" in props
    finally:
        broker.cleanup()


def test_a_cluster_id_never_reads_as_an_option():
    """One draw in 64 of plain base64url starts with '-': the storage tool then refused
    ``--cluster-id -…`` ("expected one argument") and the broker never started."""
    from brokers.launcher import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)
