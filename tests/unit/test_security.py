"""topologies.security: REWARDS_KAFKA_* reach every Kafka client, and the secrets stay secret."""

from __future__ import annotations

import ast
import ssl
import subprocess
import sys
from pathlib import Path

import faust
import pytest
from pydantic import ValidationError

from topologies.security import KafkaSecurity

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-" + "x" * 12
CA = Path("/etc/ssl/certs/ca-certificates.crt")


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> KafkaSecurity:
    for name, value in values.items():
        monkeypatch.setenv(f"REWARDS_KAFKA_{name.upper()}", value)
    return KafkaSecurity()


def test_plaintext_by_default() -> None:
    security = KafkaSecurity()
    assert security.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert security.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert security.faust_credentials() is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_settings_reach_each_client_library(
    monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    security = _env(
        monkeypatch,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username="rewards",
        sasl_password=SECRET,
    )
    sasl = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "rewards",
        "sasl_plain_password": SECRET,
    }
    assert security.kafka_python() == sasl
    assert security.aiokafka() == sasl
    creds = security.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value) == ("rewards", SECRET, mechanism)
    assert creds.protocol.value == "SASL_PLAINTEXT"
    assert SECRET not in repr(creds)


@pytest.mark.skipif(not CA.exists(), reason="needs the system CA bundle")
def test_tls_builds_a_verifying_context_for_every_library(monkeypatch: pytest.MonkeyPatch) -> None:
    security = _env(
        monkeypatch,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="rewards",
        sasl_password=SECRET,
        ssl_cafile=str(CA),
    )
    context = security.aiokafka()["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    options = security.kafka_python()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["ssl_cafile"] == str(CA) and options["ssl_check_hostname"] is True
    creds = security.faust_credentials()
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_SSL"
    plain_tls = KafkaSecurity(security_protocol="SSL", ssl_cafile=CA).faust_credentials()
    assert isinstance(plain_tls, faust.SSLCredentials)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": SECRET},
            "sasl_mechanism",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_password": SECRET,
            },
            "sasl_username",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
            },
            "sasl_password",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem", "sasl_password": SECRET},
            "ssl_cafile",
        ),
        ({"security_protocol": "TLS", "sasl_password": SECRET}, "security_protocol"),
        ({"sasl_mechanism": "GSSAPI", "sasl_password": SECRET}, "sasl_mechanism"),
    ],
)
def test_an_invalid_setting_is_named_and_the_secret_is_not_shown(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        _env(monkeypatch, **values)
    assert field in str(caught.value)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


def test_the_secret_is_masked_in_repr_str_and_json() -> None:
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="rewards",
        sasl_password=SECRET,
        ssl_key_password=SECRET,
    )
    for text in (
        repr(security),
        str(security),
        security.model_dump_json(),
        str(security.model_dump()),
    ):
        assert SECRET not in text


def test_the_worker_refuses_an_invalid_setting_naming_it_and_not_the_secret() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "worker", "--bootstrap", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "REWARDS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "REWARDS_KAFKA_SASL_USERNAME": "rewards",
            "REWARDS_KAFKA_SASL_PASSWORD": SECRET,
        },
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "sasl_mechanism" in done.stderr
    assert SECRET not in done.stdout + done.stderr


CLIENTS = {
    "KafkaConsumer",
    "KafkaProducer",
    "KafkaAdminClient",
    "GroupAdmin",
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
}
#: What a client's ``**`` argument may be: the environment's settings, or the edge's copy of them.
SECURE = {"kafka_python_options", "aiokafka_options", "client_options"}


def _spread(call: ast.Call) -> set[str]:
    names = set()
    for kw in call.keywords:
        if kw.arg is None:
            value = kw.value.func if isinstance(kw.value, ast.Call) else kw.value
            if isinstance(value, ast.Name):
                names.add(value.id)
            elif isinstance(value, ast.Attribute):
                names.add(value.attr)
    return names


def test_every_kafka_client_the_worker_and_the_tools_build_gets_the_settings() -> None:
    built, bare = [], []
    for folder in ("workarounds", "agents", "topologies", "brokers", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                name = getattr(node.func, "id", getattr(node.func, "attr", None))
                if name in CLIENTS:
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    built.append(where)
                    if not _spread(node) & SECURE:
                        bare.append(where)
    assert len(built) >= 12, built
    assert not bare, f"Kafka clients built without topologies.security: {bare}"
