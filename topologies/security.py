"""How every Kafka client of the worker and the tools connects: TLS and SASL.

The settings come from the environment only (``REWARDS_KAFKA_*``, e.g. a
Kubernetes Secret mounted as variables or files), never from a command line,
where ``ps`` would show them. One ``KafkaSecurity`` turns them into each
client library's options:

- ``aiokafka()`` for the ingest edge's consumer and producer and any aiokafka
  client (``ssl_context`` built from the CA, cert and key files);
- ``faust_credentials()`` for Faust's app (its consumer, producer and
  table clients all take ``broker_credentials``);
- ``kafka_python()`` for the admin, tail, feed, wallet and replay clients.

The password and the key password are ``SecretStr``: their ``repr``, ``str``
and JSON show ``**********``; the plain text is read only where a client is
built. Nothing here logs.

>>> KafkaSecurity(sasl_password="s3cret")  # doctest: +ELLIPSIS
KafkaSecurity(security_protocol='PLAINTEXT', ..., sasl_password=SecretStr('**********'), ...)
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSecurity(BaseSettings):
    """``REWARDS_KAFKA_SECURITY_PROTOCOL``, ``REWARDS_KAFKA_SASL_*``, ``REWARDS_KAFKA_SSL_*``."""

    model_config = SettingsConfigDict(
        env_prefix="REWARDS_KAFKA_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: CA bundle the broker's certificate is checked against (the system's when unset).
    ssl_cafile: FilePath | None = None
    #: Client certificate and key, for brokers that authenticate clients by TLS (mTLS).
    ssl_certfile: FilePath | None = None
    ssl_keyfile: FilePath | None = None
    ssl_key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _complete(self) -> KafkaSecurity:
        if self.sasl:
            for name in ("sasl_mechanism", "sasl_username", "sasl_password"):
                if getattr(self, name) is None:
                    raise ValueError(
                        f"{name}: required with security_protocol {self.security_protocol}"
                    )
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ValueError("ssl_certfile: required with ssl_keyfile")
        return self

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka and Faust; ``None`` without TLS."""
        if not self.tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile is not None:
            context.load_cert_chain(
                str(self.ssl_certfile),
                str(self.ssl_keyfile) if self.ssl_keyfile else None,
                self._secret(self.ssl_key_password),
            )
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaConsumer`` / ``AIOKafkaProducer``."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        options.update(self._sasl_options())
        return options

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients (admin, consumer, producer)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            options.update(
                ssl_check_hostname=True,
                ssl_cafile=_path(self.ssl_cafile),
                ssl_certfile=_path(self.ssl_certfile),
                ssl_keyfile=_path(self.ssl_keyfile),
                ssl_password=self._secret(self.ssl_key_password),
            )
        options.update(self._sasl_options())
        return options

    def _sasl_options(self) -> dict[str, Any]:
        """The SASL keywords, spelt the same by aiokafka and kafka-python."""
        if not self.sasl:
            return {}
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self._secret(self.sasl_password),
        }

    def faust_credentials(self) -> CredentialsT | None:
        """``broker_credentials`` for ``faust.App``; ``None`` for PLAINTEXT."""
        import faust

        if self.sasl:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=self._secret(self.sasl_password),
                mechanism=self.sasl_mechanism,
                ssl_context=self.ssl_context(),
            )
        if self.tls:
            return faust.SSLCredentials(self.ssl_context())
        return None

    @staticmethod
    def _secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()


def _path(path: Path | None) -> str | None:
    return None if path is None else str(path)


def kafka_python_options() -> dict[str, Any]:
    """``KafkaSecurity().kafka_python()``: the environment's settings, read now."""
    return KafkaSecurity().kafka_python()


def aiokafka_options() -> dict[str, Any]:
    """``KafkaSecurity().aiokafka()``: the environment's settings, read now."""
    return KafkaSecurity().aiokafka()
