"""SASL on Apache Kafka: every client of the worker and the tools authenticates, and the
secret shows up in no output.

The broker here has one client listener, SASL_PLAINTEXT with PLAIN: a client
built without the REWARDS_KAFKA_* settings cannot even read metadata, so a
worker that decides the whole feed shows that Faust's clients, the ingest
edge, the admin calls at start-up and the lag reader all got them; the feed
and wallet commands show it for the tools. Runs in the Apache Kafka pass of
``make test`` (Tansu has no SASL).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from brokers.launcher import KafkaBroker, engine_from_env, free_port
from tests.integration.conftest import PARTITIONS, WorkerFactory, wait_for_outputs
from tools.feedgen import generate
from tools.topic_io import producer
from topologies import topics
from topologies.admin import ensure_topics

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(engine_from_env() != "kafka", reason="SASL: Apache Kafka pass only"),
]

COUNT = 1500
ADMIN_PASSWORD = "broker-inter-" + secrets.token_hex(8)


def _sasl_settings(user: str, password: str) -> dict[str, str]:
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="admin" password="{ADMIN_PASSWORD}" '
        f'user_admin="{ADMIN_PASSWORD}" user_{user}="{password}";'
    )
    return {
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
    }


@pytest.fixture
def secret() -> str:
    return "pw-" + secrets.token_hex(12)


@pytest.fixture
def sasl_broker(
    tmp_path: Path, secret: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[KafkaBroker]:
    for name, value in {
        "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SASL_MECHANISM": "PLAIN",
        "SASL_USERNAME": "rewards",
        "SASL_PASSWORD": secret,
    }.items():
        monkeypatch.setenv(f"REWARDS_KAFKA_{name}", value)  # this process and every child
    broker = KafkaBroker(
        port=free_port(),
        log=tmp_path / "broker.log",
        settings=_sasl_settings("rewards", secret),
        protocol="SASL_PLAINTEXT",
    )
    with broker:
        ensure_topics(
            [broker.bootstrap],
            {topics.TRANSACTIONS: PARTITIONS, **{t: PARTITIONS for t in topics.OUTPUTS}},
        )
        yield broker


def test_worker_and_tools_authenticate_and_never_print_the_secret(
    sasl_broker: KafkaBroker, secret: str, tmp_path: Path
) -> None:
    factory = WorkerFactory(sasl_broker, tmp_path)
    try:
        worker = factory.start()
        messages = list(generate(COUNT, seed=8, bad_share=0.02))
        prod = producer([sasl_broker.bootstrap])
        for m in messages:
            prod.send(topics.TRANSACTIONS, key=m.key, value=m.value)
        prod.flush()
        prod.close()
        out = wait_for_outputs(sasl_broker.bootstrap, COUNT)
        assert out.count(topics.DECISIONS) + out.count(topics.DEAD_LETTERS) == COUNT
        scrape = worker.metrics()
        assert "rewards_consumer_lag" in scrape
        tools = [
            ["feed", "--count", "200", "--seed", "3"],
            ["wallet", "--db", str(tmp_path / "wallet.db"), "--until-idle", "3", "--summary"],
        ]
        printed = []
        for args in tools:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tools.cli",
                    *args,
                    "--bootstrap",
                    sasl_broker.bootstrap,
                ],
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
            printed.append(done.stdout + done.stderr)
        wait_for_outputs(sasl_broker.bootstrap, COUNT + 200)
    finally:
        factory.stop_all()
    for text in [scrape, worker.log_text(), *printed]:
        assert secret not in text
    assert ADMIN_PASSWORD not in worker.log_text()


def test_a_wrong_password_is_refused_without_printing_it(
    sasl_broker: KafkaBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + secrets.token_hex(12)
    monkeypatch.setenv("REWARDS_KAFKA_SASL_PASSWORD", wrong)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tools.cli", "feed", "--count", "5"),
            *("--bootstrap", sasl_broker.bootstrap),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    assert wrong not in done.stdout + done.stderr
