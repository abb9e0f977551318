"""Shared fixtures: a real broker and real worker processes, over TCP.

The broker engine comes from ``REWARDS_TEST_BROKER`` (``tansu``, the default,
or ``kafka``: Apache Kafka, see brokers/launcher.py). Each test gets its own
broker (topics are fixed by contract, so isolation is per broker) and starts
workers as subprocesses through the installed CLI.
"""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from brokers.launcher import Broker, engine_from_env, free_port, make_broker
from tools.launch import spawn_worker
from tools.processes import stop_process
from tools.topic_io import TopicTail, read_to_end
from topologies import topics
from topologies.admin import ensure_topics

PARTITIONS = 4


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    with make_broker(engine_from_env(), port=free_port(), log=tmp_path / "broker.log") as b:
        ensure_topics(
            [b.bootstrap],
            {topics.TRANSACTIONS: PARTITIONS, **{t: PARTITIONS for t in topics.OUTPUTS}},
        )
        yield b


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    web_port: int
    log: Path
    data_dir: Path

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.web_port}/healthz", timeout=2
            ) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return stop_process(self.proc, sig, timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class WorkerFactory:
    broker: Broker
    tmp: Path
    started: list[Worker] = field(default_factory=list)

    def start(
        self, *extra: str, data_dir: Path | None = None, env: dict[str, str] | None = None
    ) -> Worker:
        n = len(self.started)
        port = free_port()
        data = data_dir or self.tmp / f"state-{n}"
        log = self.tmp / f"worker-{n}.log"
        flags = [
            *("--bootstrap", self.broker.bootstrap, "--web-port", str(port)),
            *("--data-dir", str(data), "--partitions", str(PARTITIONS)),
            *extra,
        ]
        proc = spawn_worker(log, flags, env)
        worker = Worker(proc, port, log, data)
        self.started.append(worker)
        deadline = time.monotonic() + 60
        while not worker.healthy():
            if proc.poll() is not None:
                raise AssertionError(
                    f"worker exited {proc.returncode}:\n{worker.log_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"worker web not up:\n{worker.log_text()[-3000:]}")
            time.sleep(0.2)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop(signal.SIGKILL if worker.proc.poll() is None else signal.SIGTERM, 10)


@pytest.fixture
def workers(broker: Broker, tmp_path: Path) -> Iterator[WorkerFactory]:
    factory = WorkerFactory(broker, tmp_path)
    yield factory
    factory.stop_all()


def decided(tail: TopicTail) -> Counter[tuple[str, str]]:
    """(txn_id, outcome) of every decision record read so far, with repeats."""
    docs = [orjson.loads(v or b"") for _, v in tail.records[topics.DECISIONS]]
    return Counter((d["txn_id"], d["outcome"]) for d in docs)


def values(tail: TopicTail, topic: str) -> list[bytes]:
    """The values of ``topic``'s records read so far (an output record is never a tombstone)."""
    out: list[bytes] = []
    for _, v in tail.records[topic]:
        assert v is not None, f"a tombstone on {topic}"
        out.append(v)
    return out


def wait_for_outputs(
    bootstrap: str,
    expected: int,
    timeout: float = 120.0,
    decisions: Counter[tuple[str, str]] | None = None,
) -> TopicTail:
    """Read the outputs until decisions + dead letters hold ``expected`` records.

    With ``decisions`` (the oracle's (txn_id, outcome) counts), also until
    every one of those has been read: after a crash, repeated records alone
    could otherwise make up the count. Then waits until the workers' groups
    have committed every record of the feed and of the internal topics (a
    stage commits its input only after that input's outputs were
    acknowledged, so every output, late circular ones included, is on the
    broker) and reads every output topic to its end, so that anything beyond
    ``expected`` shows up too. Returns the reader with every record.
    """
    from tests.chaos.harness import wait_drained  # the harness imports this module

    tail = TopicTail([bootstrap], topics.OUTPUTS)

    def short() -> bool:
        if tail.count(topics.DECISIONS) + tail.count(topics.DEAD_LETTERS) < expected:
            return True
        return decisions is not None and bool(decisions - decided(tail))

    try:
        deadline = time.monotonic() + timeout
        while short():
            if time.monotonic() > deadline:
                counts = {t: tail.count(t) for t in topics.OUTPUTS}
                raise AssertionError(f"timed out waiting for {expected} outputs; have {counts}")
            tail.poll()
        wait_drained(bootstrap, max(deadline - time.monotonic(), 30.0))
        read_to_end(tail, tail.poll)
        return tail
    finally:
        tail.close()
