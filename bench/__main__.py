"""``python -m bench`` / ``make bench``: every figure of docs/performance.md in one run.

Each scenario gets a fresh broker (``start_broker``, brokers/launcher.py;
``--engine tansu``, the default, Tansu in memory, or ``--engine kafka``,
Apache Kafka) on a free port and the *same* feed bytes (tools.feedgen),
produced before the consumer starts:

``core``       the pure core alone, no broker, no Faust: ``rewards.simulate``
               over the feed in one process (CPU µs/event);
``ceiling``    raw aiokafka consume -> produce pass-through (bench/passthrough.py);
``bare``       a bare Faust agent: ``take_events(5000, within=0.01)``, does
               nothing (bench/bare.py): Faust's own per-record floor;
``textbook``   a textbook Faust agent doing a reward job (bench/textbook.py);
``pipeline``   one upi-rewards worker end to end, then ``du`` of its data dir
               (state bytes per user);
``pipeline2``  two workers in one group (own data dirs, web ports): the total;
``pipeline_eos`` one worker as ``pipeline``, with
               ``REWARDS_PROCESSING_GUARANTEE=exactly_once`` (one Kafka
               transaction per batch; Apache Kafka only: ``--engine kafka``);
``latency``    one worker under a producer paced at each of ``--rates`` ev/s
               in turn (``--latency-seconds`` each): feed producer CreateTime
               -> decision record CreateTime per txn_id, p50 / p99 / p99.9,
               split in hops (feed -> read by the edge -> its pack sent ->
               decision sent) and the worker's CPU share; a warm-up at the
               first rate from the worker's spawn is reported apart;
``warm``       kill -9 of a worker holding ``--warm-users`` users (changelog
               filled, recovered once), restart on the same data dir: seconds
               until events produced after the restart are decided;
``fresh``      ``--recovery-users`` users in the changelog, a worker on an
               empty data dir: seconds to "Recovery complete" and to decisions;
``standby``    two workers with ``REWARDS_TABLE_STANDBY_REPLICAS=1``; kill -9
               one: seconds until every partition is decided by the other.
               (``recovery`` = warm, fresh, standby.)

Throughput is ``events / (last output - first output)`` from the broker
records' timestamps (the bare agent: its own first to last batch), so start-up
and group join are not counted. CPU µs/event is from /proc (or the process's
own ``time.process_time``) over the same span. Prints one markdown table and
writes JSON; worker and broker logs are kept under var/bench/logs/<scenario>/.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from brokers.launcher import ENGINES, Broker, engine_from_env, free_port, make_broker
from rewards.ledger import SEP
from rewards.rulebook import load_rules
from rewards.simulate import simulate
from schemas.packed import decode_txn_pack
from schemas.routed import RoutedTransaction
from tools.feedgen import FeedMessage, generate
from tools.launch import spawn_worker
from tools.processes import shielded, stop_on_signals, stop_process
from tools.topic_io import TopicReader
from topologies import topics
from topologies.admin import ensure_topics
from topologies.settings import DEFAULT_RULES, Settings

PARTITIONS = 8
ROOT = Path(__file__).resolve().parent.parent
PASSTHROUGH_OUT = "bench.passthrough"
TEXTBOOK_OUT = "bench.textbook-decisions"
CHANGELOG = "upi-rewards-user-state-changelog"
#: probe events (recovery scenarios) are dated after any feed of the bench
PROBE_START = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
LOGS = ROOT / "var" / "bench" / "logs"
ENGINE = "tansu"  # --engine


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@dataclass
class Run:
    """One scenario's environment: a broker, a scratch dir, the processes it started."""

    work: Path
    broker: Broker
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def spawn(self, args: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        out = (self.work / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
        stop_process(proc, timeout_s=timeout)

    def close(self) -> None:
        with shielded():  # a second Ctrl-C must not leave the broker behind
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            self.broker.stop()
        keep = LOGS / self.work.name  # the scratch dir goes; the logs stay for a look
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
        for path in self.work.glob("*.log"):
            shutil.copy(path, keep / path.name)


def print_log_tails(since: float, lines: int = 20) -> None:
    """The last ``lines`` of every log a run kept (``Run.close``) since ``since`` (epoch s)."""
    for folder in sorted(LOGS.glob("*")):
        if not folder.is_dir() or folder.stat().st_mtime < since:
            continue
        for path in sorted(folder.glob("*.log")):
            tail = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            print(f"--- the last {len(tail)} lines of {path.relative_to(ROOT)}", flush=True)
            print("\n".join(tail), flush=True)


def start_broker(work: Path) -> Broker:
    """The one place a scenario's broker is chosen (``--engine``) and started (free port)."""
    return make_broker(ENGINE, port=free_port(), log=work / "broker.log").start()


def new_run(root: Path, name: str) -> Run:
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    broker = start_broker(work)
    ensure_topics(
        [broker.bootstrap],
        {
            topics.TRANSACTIONS: PARTITIONS,
            **{t: PARTITIONS for t in topics.OUTPUTS},
            PASSTHROUGH_OUT: PARTITIONS,
            TEXTBOOK_OUT: PARTITIONS,
        },
    )
    return Run(work, broker)


Record = tuple[str, bytes | None, bytes | None, int | None]  # topic, key, value, partition


def produce_records(bootstrap: str, records: Iterable[Record], rate: float = 0.0) -> list[int]:
    """Send records with aiokafka (C record builder; kafka-python's CRC is pure Python).

    With ``rate`` > 0, paced at that many records/s. Returns each record's
    CreateTime (ms), which the producer stamps at send.
    """

    async def run() -> list[int]:
        prod = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            max_request_size=4 * 1024 * 1024,
        )
        await prod.start()
        stamps: list[int] = []
        futures = []
        todo = list(records)
        try:
            # Metadata and connections first: a bank's producer is long-running, and its
            # first send's wait for them is not the pipeline's latency.
            for topic in {r[0] for r in todo}:
                await prod.partitions_for(topic)
            started = time.monotonic()
            for i, (topic, key, value, partition) in enumerate(todo):
                if rate > 0:
                    delay = started + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                ts = time.time_ns() // 1_000_000
                futures.append(
                    await prod.send(topic, value, key=key, partition=partition, timestamp_ms=ts)
                )
                stamps.append(ts)
                if len(futures) >= 20_000:
                    await asyncio.gather(*futures)
                    futures = []
            await asyncio.gather(*futures)
        finally:
            await prod.stop()
        return stamps

    return asyncio.run(run())


def produce(
    bootstrap: str, messages: Iterable[FeedMessage], topic: str = topics.TRANSACTIONS
) -> int:
    return len(produce_records(bootstrap, ((topic, m.key, m.value, None) for m in messages)))


def read_topics(
    bootstrap: str, names: list[str], expected: int, timeout: float = 300
) -> list[tuple[str, int, bytes | None, bytes | None]]:
    """Every record of ``names`` as (topic, timestamp ms, key, value), at least ``expected``."""
    with TopicReader(
        [bootstrap],
        names,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        check_crcs=False,  # kafka-python's CRC is pure Python: minutes for 200k records
        fetch_max_bytes=32 * 1024 * 1024,
    ) as reader:
        records = reader.drain(expected, timeout)
    return [(topic, r.timestamp, r.key, r.value) for topic, r in records]


def end_offsets_total(bootstrap: str, names: list[str]) -> int:
    """A cheap progress probe (may undercount on Tansu, but it moves while work goes on)."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None)
    try:
        tps = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def wait_quiet(
    probe: Callable[[], int], quiet_s: float, timeout: float, proc: Any, expected: int = 0
) -> None:
    """Wait until ``probe`` reaches ``expected``, or has stopped moving for ``quiet_s``.

    The quiet period must outlast a rebalance: a textbook agent once sat still
    for over 8 s after 211 of 197,981 decisions (group_by's new topic), and
    a shorter wait measured that pause instead of the agent.
    """
    deadline = time.monotonic() + timeout
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}; see its log")
        value = probe()
        if expected and value >= expected:
            return
        if value != last:
            last, since = value, time.monotonic()
        elif value > 0 and time.monotonic() - since > quiet_s:
            return
        time.sleep(0.5)
    raise TimeoutError("outputs still moving at the deadline")


def rate(stamps: list[int], n: int) -> dict[str, Any]:
    """Events per second between the first and last output; and between the 5th and
    95th percentile outputs (steady state: no ramp-up or tail), the per-second
    output counts and the longest pause between two outputs, so stalls show."""
    stamps = sorted(stamps)
    first, last = stamps[0], stamps[-1]
    seconds = max(last - first, 1) / 1000
    lo, hi = stamps[len(stamps) // 20], stamps[len(stamps) * 19 // 20]
    per_second: dict[int, int] = defaultdict(int)
    for ts in stamps:
        per_second[(ts - first) // 1000] += 1
    return {
        "events": n,
        "outputs": len(stamps),
        "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds),
        "steady_events_per_s": round(0.9 * len(stamps) / max(hi - lo, 1) * 1000),
        "outputs_per_second": [per_second[k] for k in range(max(per_second) + 1)],
        "longest_pause_ms": max((b - a for a, b in itertools.pairwise(stamps)), default=0),
    }


def worker_env(run: Run, data_dir: Path, web_port: int) -> dict[str, str]:
    return {
        "REWARDS_KAFKA_BOOTSTRAP_SERVERS": run.bootstrap,
        "REWARDS_WEB_PORT": str(web_port),
        "REWARDS_DATA_DIR": str(data_dir),
        "REWARDS_PARTITIONS": str(PARTITIONS),
        "REWARDS_RULES_FILE": str(DEFAULT_RULES),
    }


def scrape(port: int) -> str | None:
    """The worker's /metrics text (None: it did not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            return str(resp.read().decode())
    except OSError:
        return None


def metric_total(port: int, names: tuple[str, ...]) -> int:
    text = scrape(port)
    if text is None:
        return 0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(names) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def sums_counts(text: str | None, name: str) -> dict[str, tuple[int, float]]:
    """A histogram's or summary's (count, sum) per label set, from /metrics text."""
    out: dict[str, tuple[int, float]] = {}
    if text is None:
        return out
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    for line in text.splitlines():
        for suffix, into in (("_count", counts), ("_sum", sums)):
            head = name + suffix
            if line.startswith(head + "{"):
                labels, value = line[len(head) :].rsplit(" ", 1)
                into[labels] = float(value)
    for labels, n in counts.items():
        out[labels] = (int(n), sums.get(labels, 0.0))
    return out


def gc_pauses(text: str | None) -> dict[str, tuple[int, float]]:
    """The worker's garbage collections so far (from a ``scrape``), per generation:
    (how many, seconds in all)."""
    found = sums_counts(text, "rewards_gc_pause_seconds")
    return {g: found.get(f'{{generation="{g}"}}', (0, 0.0)) for g in "012"}


def _per_generation(
    pauses: list[dict[str, tuple[int, float]]],
) -> list[tuple[str, list[tuple[int, float]]]]:
    return [(g, [p[g] for p in pauses]) for g in "012"]


def _gc_note(found: dict[str, list[float]] | None) -> str:
    """The workers' garbage collections in a pipeline row: how many, seconds, per generation."""
    if not found:
        return ""
    return ", GC " + " / ".join(
        f"gen{g} {int(n)} in {s:.2f} s" for g, (n, s) in sorted(found.items())
    )


def batch_phases(text: str | None) -> dict[str, tuple[int, float]]:
    """Each stage's batches so far (from a ``scrape``), per phase: (how many, seconds in all)."""
    found = sums_counts(text, "rewards_batch_seconds")
    out = {}
    for labels, value in found.items():
        pairs = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if "stage" in pairs and "phase" in pairs:
            out[f"{pairs['stage']}.{pairs['phase']}"] = value
    return out


def phase_means(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    """Per stage phase between two readings: (batches, mean ms)."""
    out = {}
    for key, (n, secs) in sorted(after.items()):
        n0, secs0 = before.get(key, (0, 0.0))
        if n > n0:
            out[key] = (n - n0, round((secs - secs0) * 1000 / (n - n0), 2))
    return out


def wait_for(cond: Callable[[], bool], timeout: float, what: str, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.25)


ACCOUNTED = ("rewards_events_total{", "rewards_dead_letters_total{")


# --- scenarios -----------------------------------------------------------------------------


def bench_core(feed: list[FeedMessage], rounds: int = 3) -> dict[str, Any]:
    """Best of ``rounds`` passes of the pure core over the whole feed (same bytes).

    Timed in CPU seconds of this process: the core is single-threaded, and on
    a shared box wall time mostly measures the neighbours. Each pass is
    charged for freeing its own outputs (a worker frees them once encoded),
    not for its users' state, which a worker keeps, nor for the previous
    pass's (~4 µs/event at 200,000 events, once charged to every pass but
    the first).
    """
    book = load_rules(DEFAULT_RULES)
    values = [m.value for m in feed]
    best = float("inf")
    decisions = dead_letters = 0
    for _ in range(rounds):
        started = time.process_time()
        sim = simulate(values, book)
        decisions, dead_letters = len(sim.effects), len(sim.dead_letters)
        sim.effects, sim.dead_letters = [], []
        best = min(best, time.process_time() - started)
        del sim  # the state, off the clock
    return {
        "events": len(values),
        "events_per_s": round(len(values) / best),
        "us_per_event": round(best * 1e6 / len(values), 1),
        "decisions": decisions,
        "dead_letters": dead_letters,
        "rounds": rounds,
        "load_avg": load_avg(),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuProbe:
    """Wrap a progress probe: CPU of ``pids`` at its first non-zero value and its last change.

    So a process that keeps running after its work (a Faust agent) is charged
    from its first output to its last, not for the idle wait after.
    """

    def __init__(self, probe: Callable[[], int], pids: list[int]) -> None:
        self.probe, self.pids = probe, pids
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] = (0.0, 0)

    def __call__(self) -> int:
        value = self.probe()
        if value > 0 and (self.first is None or value != self.last[1]):
            cpu = sum(cpu_seconds(pid) for pid in self.pids)
            if self.first is None:
                self.first = (cpu, value)
            self.last = (cpu, value)
        return value

    def us_per_event(self) -> float | None:
        if self.first is None or self.last[1] <= self.first[1]:
            return None
        return round((self.last[0] - self.first[0]) * 1e6 / (self.last[1] - self.first[1]), 1)


def bench_ceiling(root: Path, feed: list[FeedMessage]) -> dict[str, Any]:
    run = new_run(root, "ceiling")
    try:
        produce(run.bootstrap, feed)
        log(f"ceiling: {len(feed):,} events produced; pass-through running (load {load_avg()})")
        result_file = run.work / "passthrough.json"
        proc = run.spawn(
            [
                "-m",
                "bench.passthrough",
                "--bootstrap",
                run.bootstrap,
                "--count",
                str(len(feed)),
                "--out",
                PASSTHROUGH_OUT,
                "--result",
                str(result_file),
            ],
            {},
            "passthrough",
        )
        if proc.wait(timeout=1800) != 0:
            raise RuntimeError("pass-through failed; see its log")
        out = read_topics(run.bootstrap, [PASSTHROUGH_OUT], len(feed))
        result = rate([r[1] for r in out], len(feed))
        result["cpu_us_per_event"] = orjson.loads(result_file.read_bytes())["cpu_us_per_event"]
        result["load_avg"] = load_avg()
        return result
    finally:
        run.close()


def bench_bare(root: Path, feed: list[FeedMessage]) -> dict[str, Any]:
    """A Faust agent that takes the feed in batches and does nothing (bench/bare.py)."""
    run = new_run(root, "bare")
    try:
        produce(run.bootstrap, feed)
        log(f"bare: {len(feed):,} events produced; bare Faust agent running (load {load_avg()})")
        result_file = run.work / "bare.json"
        proc = run.spawn(
            ["-m", "bench.bare", "worker", "-l", "warn"],
            {
                "BENCH_BOOTSTRAP": run.bootstrap,
                "BENCH_DATA_DIR": str(run.work / "state"),
                "BENCH_WEB_PORT": str(free_port()),
                "BENCH_COUNT": str(len(feed)),
                "BENCH_RESULT": str(result_file),
            },
            "bare",
        )
        wait_for(result_file.exists, 1800, "bare agent", proc)
        run.stop(proc)
        result: dict[str, Any] = orjson.loads(result_file.read_bytes())
        result["load_avg"] = load_avg()
        return result
    finally:
        run.close()


def bench_textbook(root: Path, feed: list[FeedMessage]) -> dict[str, Any]:
    # A textbook agent stops at the first undecodable record: it gets the valid ones.
    feed = [m for m in feed if m.valid]
    run = new_run(root, "textbook")
    try:
        produce(run.bootstrap, feed)
        log(f"textbook: {len(feed):,} events produced; Faust agent running (load {load_avg()})")
        proc = run.spawn(
            ["-m", "bench.textbook", "worker", "-l", "warn"],
            {
                "BENCH_BOOTSTRAP": run.bootstrap,
                "BENCH_DATA_DIR": str(run.work / "state"),
                "BENCH_WEB_PORT": str(free_port()),
            },
            "textbook",
        )
        time.sleep(5)
        probe = CpuProbe(lambda: end_offsets_total(run.bootstrap, [TEXTBOOK_OUT]), [proc.pid])
        wait_quiet(probe, 60.0, 3600, proc, len(feed))
        if proc.poll() is not None:
            raise RuntimeError("textbook worker died; see its log")
        run.stop(proc)
        valid = sum(m.valid for m in feed)
        out = read_topics(run.bootstrap, [TEXTBOOK_OUT], 1)
        result = rate([r[1] for r in out], len(out))
        result["valid_events"] = valid
        result["cpu_us_per_event"] = probe.us_per_event()
        result["load_avg"] = load_avg()
        return result
    finally:
        run.close()


Worker = tuple[subprocess.Popen[bytes], int]  # the process, its web port


def start_worker(
    run: Run, data_dir: Path, name: str, extra_env: dict[str, str] | None = None
) -> Worker:
    port = free_port()
    env = {**worker_env(run, data_dir, port), **(extra_env or {})}
    proc = spawn_worker(run.work / f"{name}.log", env=env, cwd=ROOT)
    run.procs.append(proc)
    return proc, port


def worker_cpu(workers: list[Worker], total: int) -> dict[str, Any]:
    """Wait until the workers together accounted for ``total`` messages; their CPU per event.

    CPU time per event is the figure that survives a shared, noisy box: wall
    throughput also measures the neighbours, CPU time mostly the workers' own
    work. Counted from the first accounted message (start-up and group join left
    out); with several workers, the sum of their CPU over the sum of their events.
    """
    first: list[tuple[float, float, int]] = []
    last = [0]

    def cpu() -> float:
        return sum(cpu_seconds(proc.pid) for proc, _ in workers)

    def accounted() -> bool:
        for proc, _ in workers:
            if proc.poll() is not None:
                raise RuntimeError(f"pipeline: worker exited with {proc.returncode}")
        last[0] = sum(metric_total(port, ACCOUNTED) for _, port in workers)
        if not first and last[0] > 0:
            first.append((time.monotonic(), cpu(), last[0]))
        return last[0] >= total

    wait_for(accounted, 3600, "pipeline")
    wall, cpu_end = time.monotonic(), cpu()
    t0, cpu0, start = first[0]
    events = max(last[0] - start, 1)
    return {
        "events": events,
        "cpu_us_per_event": round((cpu_end - cpu0) * 1e6 / events),
        "cpu_share_of_one_core": round((cpu_end - cpu0) / max(wall - t0, 1e-9), 2),
        "events_per_cpu_s": round(events / max(cpu_end - cpu0, 1e-9)),
    }


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_pipeline(
    root: Path,
    feed: list[FeedMessage],
    profile: bool,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """``workers`` upi-rewards workers in one group (own data dirs and web ports)."""
    run = new_run(root, name or ("pipeline" if workers == 1 else f"pipeline{workers}"))
    try:
        produce(run.bootstrap, feed)
        users = {orjson.loads(m.value)["payer_vpa"].lower() for m in feed if m.valid and m.value}
        log(
            f"pipeline x{workers}: {len(feed):,} events ({len(users):,} payers) produced; "
            f"worker(s) running (load {load_avg()})"
        )
        dirs = [run.work / f"state-{i}" for i in range(workers)]
        procs = [start_worker(run, d, f"worker-{i}", extra_env) for i, d in enumerate(dirs)]
        spy = None
        if profile and workers == 1:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--format",
                    "raw",
                    "-o",
                    str(run.work / "profile.txt"),
                    "--pid",
                    str(procs[0][0].pid),
                    "--rate",
                    "200",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu = worker_cpu(procs, len(feed))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        out = read_topics(run.bootstrap, [topics.DECISIONS, topics.DEAD_LETTERS], len(feed))
        result = rate([r[1] for r in out], len(feed))
        result["workers"] = workers
        result["accounted"] = len(out) == len(feed)
        result["load_avg"] = load_avg()
        result["worker_cpu"] = cpu
        result["gc"] = {  # every worker's collections, start-up included: (count, seconds)
            g: [sum(x) for x in zip(*pair, strict=True)]
            for g, pair in _per_generation([gc_pauses(scrape(port)) for _, port in procs])
        }
        for proc, _ in procs:
            run.stop(proc)  # rocksdict flushes on a clean stop
        size = sum(du_bytes(d) for d in dirs)
        result["state"] = {
            "users": len(users),
            "bytes_on_disk": size,
            "bytes_per_user": round(size / max(len(users), 1)),
        }
        return result
    finally:
        run.close()


def percentiles(lat: list[int]) -> dict[str, int]:
    lat = sorted(lat)
    if not lat:
        return {}

    def pct(q: float) -> int:
        return lat[min(int(q * len(lat)), len(lat) - 1)]

    return {"p50_ms": pct(0.50), "p99_ms": pct(0.99), "p999_ms": pct(0.999), "max_ms": lat[-1]}


#: Seconds of the first rate offered before the latency run's clock starts.
WARM_UP_S = 5.0


def drained(port: int, total: int) -> bool:
    return metric_total(port, ACCOUNTED) >= total


def bench_latency(
    root: Path, feed: list[FeedMessage], rates: list[float], seconds: float
) -> dict[str, Any]:
    """One worker, then the feed offered at each rate in turn (``seconds`` each).

    Each phase waits for the worker to drain before the next starts; latency is
    per decision, the feed producer's CreateTime to the decision's CreateTime.
    """
    run = new_run(root, "latency")
    try:
        data_dir = run.work / "state"
        proc, port = start_worker(run, data_dir, "worker")
        # Warm up: the first rate for WARM_UP_S, sent from the moment the worker is
        # spawned, then a pause, so its start (imports, group joins, the rebalance after
        # Faust creates its internal topics) is over and the broker has seen load (a
        # JVM's first seconds are slow) before the clock starts. Its latency, start-up
        # included, is kept apart (the last phase below).
        warm = max(int(rates[0] * WARM_UP_S), 1)
        sent: dict[str, list[tuple[int, int]]] = defaultdict(list)  # txn_id -> (phase, ts)
        stamps = produce_records(
            run.bootstrap,
            ((topics.TRANSACTIONS, m.key, m.value, None) for m in feed[:warm]),
            rates[0],
        )
        for m, ts in zip(feed[:warm], stamps, strict=True):
            if m.valid and m.value:
                sent[orjson.loads(m.value)["txn_id"]].append((len(rates), ts))
        wait_for(lambda: metric_total(port, ACCOUNTED) >= warm, 300, "warm-up", proc)
        time.sleep(2)
        done = warm
        phases: list[dict[str, Any]] = []
        for phase, offered in enumerate(rates):
            n = int(offered * seconds)
            part = feed[done : done + n]
            log(f"latency: {len(part):,} events at {offered:,.0f} ev/s (load {load_avg()})")
            started = time.monotonic()
            before = scrape(port)
            gcs_before, phases_before = gc_pauses(before), batch_phases(before)
            cpu_before = cpu_seconds(proc.pid)
            stamps = produce_records(
                run.bootstrap, ((topics.TRANSACTIONS, m.key, m.value, None) for m in part), offered
            )
            elapsed = time.monotonic() - started
            achieved = len(part) / elapsed
            busy = (cpu_seconds(proc.pid) - cpu_before) / elapsed  # the worker's cores in use
            for m, ts in zip(part, stamps, strict=True):
                if m.valid and m.value:
                    sent[orjson.loads(m.value)["txn_id"]].append((phase, ts))
            done += len(part)
            wait_for(partial(drained, port, done), 600, "latency drain", proc)
            after = scrape(port)
            gcs_after = gc_pauses(after)
            result: dict[str, Any] = {
                "offered_per_s": offered,
                "events": len(part),
                "achieved_per_s": round(achieved),
                "worker_cpu_share": round(busy, 2),
            }
            for g, name in (("0", "young_gc"), ("1", "middle_gc"), ("2", "full_gc")):
                n = gcs_after.get(g, (0, 0.0))[0] - gcs_before.get(g, (0, 0.0))[0]
                secs = gcs_after.get(g, (0, 0.0))[1] - gcs_before.get(g, (0, 0.0))[1]
                result[f"{name}s"] = n
                result[f"{name}_mean_ms"] = round(secs * 1000 / n, 2) if n else None
            result["batch_phases"] = phase_means(phases_before, batch_phases(after))
            phases.append(result)
            time.sleep(2)
        out = read_topics(run.bootstrap, [topics.DECISIONS], 1)
        # Where each event was on the way: read by the edge (ingested_ns), its pack sent
        # (the pack's CreateTime), its decision sent; the hops are differences of these.
        by_payer = topics.Internal(Settings().app_id).by_payer
        packed: dict[str, tuple[int, int]] = {}  # txn_id -> (edge read, pack sent), ms
        for _, pack_ts, _, value in read_topics(run.bootstrap, [by_payer], 1):
            for item in decode_txn_pack(value):
                if isinstance(item, RoutedTransaction):
                    packed.setdefault(item.txn.txn_id, (item.ingested_ns // 1_000_000, pack_ts))
        hops: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(len(rates) + 1)]
        lat: list[list[int]] = [[] for _ in range(len(rates) + 1)]  # the last: the warm-up
        # per phase, the worst latency of the events sent in each second: stalls show
        worst: list[dict[int, int]] = [defaultdict(int) for _ in range(len(rates) + 1)]
        for _, ts, _, value in sorted(out, key=lambda r: r[1]):
            txn_id = orjson.loads(value or b"{}")["txn_id"]
            pending = sent.get(txn_id)
            if pending:
                phase, sent_ts = pending.pop(0)
                lat[phase].append(ts - sent_ts)
                read_ms, pack_ms = packed.get(txn_id, (0, 0))
                if read_ms:
                    hops[phase]["feed_to_edge"].append(read_ms - sent_ts)
                    hops[phase]["edge_to_pack"].append(pack_ms - read_ms)
                    hops[phase]["pack_to_decision"].append(ts - pack_ms)
                second = sent_ts // 1000
                worst[phase][second] = max(worst[phase][second], ts - sent_ts)
        warm_up = {"offered_per_s": rates[0], "events": warm, "matched": len(lat[-1])}
        warm_up.update(percentiles(lat[-1]))
        for result, values, per_s, hop in zip(phases, lat, worst, hops, strict=False):
            result.update(percentiles(values), matched=len(values))
            result["hops"] = {
                name: {k: v for k, v in percentiles(ms).items() if k in ("p50_ms", "p99_ms")}
                for name, ms in hop.items()
            }
            result["max_ms_by_send_second"] = [per_s[k] for k in sorted(per_s)]
        return {
            "rates": phases,
            "warm_up": warm_up,
            "seconds_per_rate": seconds,
            "measured": "feed producer CreateTime -> decision record CreateTime (worker send)",
            "load_avg": load_avg(),
        }
    finally:
        run.close()


# --- recovery ------------------------------------------------------------------------------


def user_templates(book_path: Path, count: int) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """Each user's changelog records after a realistic feed, as the pure core leaves them.

    Through ``rewards.simulate(...).state``, whatever its layout: if it maps each
    VPA to a user-state object and ``rewards.state`` has ``encode_user``, one
    record per user (key ``user_key(vpa)``); otherwise the older multi-key
    layout (``<vpa><SEP>...`` string keys to bytes; keys starting with NUL are
    not per user and are left out).
    """
    book = load_rules(book_path)
    feed = generate(count, seed=7, users=count // 2, fraud_share=0.01)
    state: Mapping[str, Any] = simulate((m.value for m in feed), book).state
    per_user: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    codec = state_codec()
    for key, value in state.items():
        if codec is not None and not isinstance(value, bytes | bytearray):
            user_key, encode_user = codec
            per_user[key].append((user_key(key), encode_user(value)))
        elif not key.startswith("\x00"):
            per_user[key.split(SEP, 1)[0]].append((key.encode(), bytes(value)))
    return sorted(per_user.items())


def state_codec() -> tuple[Callable[[str], bytes], Callable[[Any], bytes]] | None:
    """``rewards.state``'s (user_key, encode_user) when the core has them."""
    try:
        module = importlib.import_module("rewards.state")
    except ImportError:
        return None
    encode = getattr(module, "encode_user", None)
    if encode is None:
        return None
    key: Callable[[str], bytes] = getattr(module, "user_key", str.encode)
    encode_user: Callable[[Any], bytes] = encode
    return key, encode_user


def fill_changelog(bootstrap: str, users: int) -> dict[str, Any]:
    """``users`` users' records in the user-state changelog: templates under new VPAs."""
    ensure_topics([bootstrap], {CHANGELOG: PARTITIONS})
    templates = user_templates(DEFAULT_RULES, 20_000)
    records = size = 0

    def build() -> Iterator[Record]:
        nonlocal records, size
        for i in range(users):
            old, recs = templates[i % len(templates)]
            local, _, handle = old.partition("@")
            new = f"{local}.{i}@{handle}"
            partition = (murmur2(new.encode()) & 0x7FFFFFFF) % PARTITIONS
            olds, news = old.encode(), new.encode()
            for key, value in recs:
                k = news + key[len(olds) :] if key.startswith(olds) else key
                v = value.replace(olds, news)
                records += 1
                size += len(k) + len(v)
                yield CHANGELOG, k, v, partition

    produce_records(bootstrap, build())
    return {"users": users, "records": records, "bytes": size, "template_users": len(templates)}


def payer_partition(vpa: str) -> int:
    return int(murmur2(vpa.encode()) & 0x7FFFFFFF) % PARTITIONS


def probe_feed(round_no: int) -> dict[str, tuple[FeedMessage, int]]:
    """Valid events of users no other part of the bench has, covering every partition.

    txn_id -> (message, the payer's partition); a later round has later ids.
    """
    start = PROBE_START + timedelta(days=round_no)
    count = 200
    while True:
        out: dict[str, tuple[FeedMessage, int]] = {}
        for m in generate(count, 9000 + round_no, start=start, users=count // 2, bad_share=0.0):
            if m.valid and m.value:
                doc = orjson.loads(m.value)
                out.setdefault(doc["txn_id"], (m, payer_partition(doc["payer_vpa"].lower())))
        if len({p for _, p in out.values()}) == PARTITIONS:
            return out
        count *= 2


def decision_ends(bootstrap: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None)
    try:
        parts = consumer.partitions_for_topic(topics.DECISIONS) or set()
        ends: dict[TopicPartition, int] = consumer.end_offsets(
            [TopicPartition(topics.DECISIONS, p) for p in parts]
        )
        return ends
    finally:
        consumer.close()


def send_probes(run: Run, round_no: int) -> tuple[dict[str, int], dict[TopicPartition, int]]:
    """Produce a probe round; its txn_id -> partition, and the decisions' ends before it."""
    probes = probe_feed(round_no)
    ends = decision_ends(run.bootstrap)
    produce(run.bootstrap, [m for m, _ in probes.values()])
    return {txn: p for txn, (_, p) in probes.items()}, ends


def wait_decided(
    bootstrap: str,
    probes: dict[str, int],
    since: dict[TopicPartition, int],
    timeout: float,
    procs: list[subprocess.Popen[bytes]],
) -> dict[int, int]:
    """Per payer partition, the CreateTime (ms) of the first probe decision there."""
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False, check_crcs=False
    )
    consumer.assign(list(since))
    for tp, offset in since.items():
        consumer.seek(tp, offset)
    firsts: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(firsts) < len(set(probes.values())):
            for batch in consumer.poll(timeout_ms=200, max_records=5000).values():
                for r in batch:
                    part = probes.get(orjson.loads(r.value or b"{}").get("txn_id", ""))
                    if part is not None:
                        firsts[part] = min(firsts.get(part, r.timestamp), r.timestamp)
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited while waiting for probe decisions")
            if time.monotonic() > deadline:
                raise TimeoutError(f"probe decisions on {sorted(firsts)} of {PARTITIONS} only")
        return firsts
    finally:
        consumer.close()


def log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text(errors="replace")


def wait_recovered(run: Run, name: str, proc: subprocess.Popen[bytes]) -> float:
    """Seconds from now until the worker's log says 'Recovery complete'."""
    started = time.monotonic()
    wait_for(lambda: log_has(run.work / f"{name}.log", "Recovery complete"), 3600, name, proc)
    return time.monotonic() - started


def since_s(firsts: dict[int, int], t0_ms: int) -> dict[str, float]:
    return {
        "first_decision_s": round((min(firsts.values()) - t0_ms) / 1000, 1),
        "all_partitions_s": round((max(firsts.values()) - t0_ms) / 1000, 1),
    }


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bench_warm(root: Path, users: int) -> dict[str, Any]:
    """kill -9 a worker holding ``users`` users' state; restart on the same disk."""
    run = new_run(root, "warm")
    try:
        log(f"warm: filling the changelog for {users:,} users (load {load_avg()})")
        filled = fill_changelog(run.bootstrap, users)
        data_dir = run.work / "state"
        proc, _ = start_worker(run, data_dir, "first")
        first_recovery = wait_recovered(run, "first", proc)
        probes, since = send_probes(run, 0)
        wait_decided(run.bootstrap, probes, since, 600, [proc])
        time.sleep(2)  # past the probes' checkpoint and a Faust offset commit
        size = du_bytes(data_dir)
        log(f"warm: kill -9 of a worker holding {users:,} users (load {load_avg()})")
        proc.kill()
        proc.wait()
        t0 = now_ms()
        started = time.monotonic()
        proc, _ = start_worker(run, data_dir, "restart")
        probes, since = send_probes(run, 1)
        firsts = wait_decided(run.bootstrap, probes, since, 900, [proc])
        recovered = log_has(run.work / "restart.log", "Recovery complete")
        result = {
            **filled,
            "first_recovery_s": round(first_recovery, 1),
            **since_s(firsts, t0),
            "restart_to_wait_end_s": round(time.monotonic() - started, 1),
            "recovery_complete_logged": recovered,
            "bytes_on_disk_before_kill": size,
            "measured": "kill -9, restart on the same data dir -> first / every partition's "
            "first decision of events produced after the restart (decision CreateTime)",
            "load_avg": load_avg(),
        }
        run.stop(proc)
        return result
    finally:
        run.close()


def bench_fresh(root: Path, users: int) -> dict[str, Any]:
    """``users`` users in the changelog, a worker on an empty data dir."""
    run = new_run(root, "fresh")
    try:
        log(f"fresh: filling the changelog for {users:,} users (load {load_avg()})")
        filled = fill_changelog(run.bootstrap, users)
        log(f"fresh: {filled['records']:,} changelog records; cold start (load {load_avg()})")
        probes, since = send_probes(run, 0)
        data_dir = run.work / "state"
        t0 = now_ms()
        proc, _ = start_worker(run, data_dir, "fresh")
        recovery = wait_recovered(run, "fresh", proc)
        firsts = wait_decided(run.bootstrap, probes, since, 900, [proc])
        run.stop(proc)
        size = du_bytes(data_dir)
        return {
            **filled,
            "recovery_s": round(recovery, 1),
            **since_s(firsts, t0),
            "bytes_on_disk": size,
            "bytes_per_user": round(size / max(users, 1)),
            "measured": "worker start on an empty data dir -> 'Recovery complete' log line; "
            "and -> first / every partition's first decision of events waiting in the feed",
            "load_avg": load_avg(),
        }
    finally:
        run.close()


def bench_standby(root: Path, users: int) -> dict[str, Any]:
    """Two workers with a standby replica each; kill -9 one; the other takes over."""
    run = new_run(root, "standby")
    try:
        log(f"standby: filling the changelog for {users:,} users (load {load_avg()})")
        filled = fill_changelog(run.bootstrap, users)
        env = {"REWARDS_TABLE_STANDBY_REPLICAS": "1"}
        a, _ = start_worker(run, run.work / "state-a", "worker-a", env)
        b, _ = start_worker(run, run.work / "state-b", "worker-b", env)
        wait_recovered(run, "worker-a", a)
        wait_recovered(run, "worker-b", b)
        probes, since = send_probes(run, 0)
        wait_decided(run.bootstrap, probes, since, 900, [a, b])
        time.sleep(5)  # standbys catch up with the probes' changelog records
        log(f"standby: kill -9 of one of two workers (load {load_avg()})")
        b.kill()
        b.wait()
        t0 = now_ms()
        probes, since = send_probes(run, 1)
        firsts = wait_decided(run.bootstrap, probes, since, 900, [a])
        result = {
            "users": users,
            "records": filled["records"],
            **since_s(firsts, t0),
            "measured": "kill -9 of one worker -> every partition's first decision (by the "
            "survivor) of events produced after the kill (decision CreateTime)",
            "load_avg": load_avg(),
        }
        run.stop(a)
        return result
    finally:
        run.close()


# --- report --------------------------------------------------------------------------------


def _num(value: Any, fmt: str = ",") -> str:
    return "–" if value is None else format(value, fmt)


def table(res: dict[str, Any]) -> str:
    """Every figure in one markdown table."""
    rows = [
        "| what | figure | CPU µs/event | / ceiling | / bare agent | notes |",
        "|---|---|---|---|---|---|",
    ]
    c, b = res.get("ceiling"), res.get("bare")

    def ratios(ev_s: float) -> str:
        to_c = f"{ev_s / c['events_per_s']:.0%}" if c else "–"
        to_b = f"{ev_s / b['events_per_s']:.2f}x" if b else "–"
        return f"{to_c} | {to_b}"

    if c:
        rows.append(
            f"| transport ceiling (aiokafka pass-through) | {c['events_per_s']:,} ev/s | "
            f"{_num(c.get('cpu_us_per_event'))} | {ratios(c['events_per_s'])} | "
            f"{c['events']:,} events, load {c['load_avg']} |"
        )
    if b:
        rows.append(
            f"| bare Faust agent (take_events 5000, nothing) | {b['events_per_s']:,} ev/s | "
            f"{_num(b.get('cpu_us_per_event'))} | {ratios(b['events_per_s'])} | "
            f"{b['counted_events']:,} events counted, load {b['load_avg']} |"
        )
    t = res.get("textbook")
    if t:
        rows.append(
            f"| textbook Faust agent | {t['events_per_s']:,} ev/s | "
            f"{_num(t.get('cpu_us_per_event'))} | {ratios(t['events_per_s'])} | "
            f"{t['outputs']:,} decisions, load {t['load_avg']} |"
        )
    for name in ("pipeline", "pipeline2", "pipeline_eos"):
        p = res.get(name)
        if not p:
            continue
        w = p.get("worker_cpu") or {}
        n = p["workers"]
        eos = ", exactly_once" if name == "pipeline_eos" else ""
        rows.append(
            f"| upi-rewards, {n} worker{'s' * (n > 1)}{eos} | **{p['events_per_s']:,} ev/s** | "
            f"{_num(w.get('cpu_us_per_event'))} | {ratios(p['events_per_s'])} | "
            f"{p['events']:,} events, steady {p['steady_events_per_s']:,} ev/s, longest pause "
            f"between two decisions {p.get('longest_pause_ms', 0):,} ms, accounted "
            f"{p['accounted']}, workers at {w.get('cpu_share_of_one_core', 0):.0%} of one core, "
            f"load {p['load_avg']}{_gc_note(p.get('gc'))} |"
        )
    if res.get("pipeline") and res.get("pipeline2"):
        one, two = res["pipeline"], res["pipeline2"]
        rows.append(
            f"| 2 workers / 1 worker | {two['events_per_s'] / one['events_per_s']:.2f}x | | | | |"
        )
    if res.get("pipeline") and res.get("pipeline_eos"):
        one, eos_run = res["pipeline"], res["pipeline_eos"]
        us0 = (one.get("worker_cpu") or {}).get("cpu_us_per_event")
        us1 = (eos_run.get("worker_cpu") or {}).get("cpu_us_per_event")
        cost = f", CPU µs/event {us1 / us0:.2f}x" if us0 and us1 else ""
        rows.append(
            f"| exactly_once / at_least_once, 1 worker | "
            f"{eos_run['events_per_s'] / one['events_per_s']:.2f}x ev/s{cost} | | | | |"
        )
    k = res.get("core")
    if k:
        rows.append(
            f"| pure core alone (no broker, no Faust) | {k['events_per_s']:,} ev/s | "
            f"{k['us_per_event']} | | | best of {k['rounds']}, load {k['load_avg']} |"
        )
    lat = res.get("latency")
    if lat:
        for r in lat["rates"]:
            rows.append(
                f"| latency at {r['offered_per_s']:,.0f} ev/s offered | p50 "
                f"{_num(r.get('p50_ms'))} / p99 {_num(r.get('p99_ms'))} / p99.9 "
                f"{_num(r.get('p999_ms'))} ms | | | | {r['matched']:,} decisions, max "
                f"{_num(r.get('max_ms'))} ms, achieved {r['achieved_per_s']:,} ev/s, "
                f"{lat['seconds_per_rate']:g} s; worker CPU {r.get('worker_cpu_share', 0):.0%} "
                f"of a core; GCs: {r.get('full_gcs', 0)} full of "
                f"{_num(r.get('full_gc_mean_ms'))} ms, {r.get('middle_gcs', 0):,} gen-1 of "
                f"{_num(r.get('middle_gc_mean_ms'))} ms, {r.get('young_gcs', 0):,} young of "
                f"{_num(r.get('young_gc_mean_ms'))} ms; hops p50/p99: "
                + ", ".join(
                    f"{name.replace('_', ' ')} {_num(h.get('p50_ms'))}/{_num(h.get('p99_ms'))} ms"
                    for name, h in r.get("hops", {}).items()
                )
                + " |"
            )
        w = lat.get("warm_up")
        if w:
            rows.append(
                f"| latency of the warm-up ({WARM_UP_S:g} s at {w['offered_per_s']:,.0f} ev/s "
                f"from the worker's spawn, start-up included; not in the rows above) | p50 "
                f"{_num(w.get('p50_ms'))} / p99 {_num(w.get('p99_ms'))} ms "
                f"| | | | {w['matched']:,} decisions, max {_num(w.get('max_ms'))} ms |"
            )
    p = res.get("pipeline")
    if p:
        s = p["state"]
        rows.append(
            f"| state on disk per user (pipeline feed) | {s['bytes_per_user']:,} B | | | | "
            f"du {s['bytes_on_disk'] / 1e6:.1f} MB for {s['users']:,} payers, "
            f"{p['events'] / max(s['users'], 1):.1f} events per payer |"
        )
    f = res.get("fresh")
    if f:
        rows.append(
            f"| state on disk per user (recovered) | {f['bytes_per_user']:,} B | | | | "
            f"du {f['bytes_on_disk'] / 1e6:.1f} MB for {f['users']:,} users |"
        )
    w = res.get("warm")
    if w:
        rows.append(
            f"| recovery: kill -9, restart on the same disk | {w['first_decision_s']} s | | | | "
            f"{w['users']:,} users held; every partition deciding after "
            f"{w['all_partitions_s']} s; load {w['load_avg']} |"
        )
    if f:
        rows.append(
            f"| recovery: fresh disk | {f['recovery_s']} s | | | | {f['users']:,} users, "
            f"{f['records']:,} changelog records ({f['bytes'] / 1e6:.0f} MB) to 'Recovery "
            f"complete'; waiting events decided after {f['all_partitions_s']} s; "
            f"load {f['load_avg']} |"
        )
    sb = res.get("standby")
    if sb:
        rows.append(
            f"| recovery: standby takes over after kill -9 | {sb['all_partitions_s']} s | | | | "
            f"2 workers, 1 standby replica, {sb['users']:,} users; first decision after "
            f"{sb['first_decision_s']} s; load {sb['load_avg']} |"
        )
    return "\n".join(rows)


SCENARIOS = (
    "core",
    "ceiling",
    "bare",
    "textbook",
    "pipeline",
    "pipeline2",
    "pipeline_eos",
    "latency",
    "warm",
    "fresh",
    "standby",
)
#: ``--only`` shorthands
GROUPS = {"recovery": ("warm", "fresh", "standby")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, help="events for the throughput runs (200,000)")
    p.add_argument("--users", type=int, help="distinct users in the feed (100,000)")
    p.add_argument(
        "--rates",
        default="500,1000,2000,4000",
        help="comma-separated offered loads of the latency run, ev/s",
    )
    p.add_argument("--rate", type=float, help="one offered load instead of --rates")
    p.add_argument("--latency-seconds", type=float, help="length of each latency rate (20)")
    p.add_argument(
        "--warm-users", type=int, help="users held by the kill -9 and standby workers (100,000)"
    )
    p.add_argument(
        "--recovery-users", type=int, help="users recovered onto a fresh disk (1,000,000)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="defaults for a short run: 20k events over 20k users, 5 s per latency rate, "
        "20k users held, 100k users to recover",
    )
    p.add_argument(
        "--only",
        default=None,
        help=f"comma-separated scenarios: {', '.join(SCENARIOS)} (recovery = warm,fresh,standby; "
        "default: all, pipeline_eos on --engine kafka only)",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the 1-worker pipeline")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=engine_from_env(),
        help="broker engine for every scenario (default: REWARDS_TEST_BROKER, else tansu)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "results.json")
    args = p.parse_args(argv)
    global ENGINE
    ENGINE = args.engine
    stop_on_signals()  # SIGTERM, SIGINT, SIGHUP: like Ctrl-C, brokers and workers too
    quick = (20_000, 20_000, 5.0, 20_000, 100_000)
    full = (200_000, 100_000, 20.0, 100_000, 1_000_000)
    names = ("count", "users", "latency_seconds", "warm_users", "recovery_users")
    for name, default in zip(names, quick if args.quick else full, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.only is None:  # Tansu cannot run transactions: exactly_once is Kafka's alone
        args.only = ",".join(s for s in SCENARIOS if s != "pipeline_eos" or ENGINE == "kafka")
    only = {s for part in args.only.split(",") for s in GROUPS.get(part, (part,))}
    unknown = only - set(SCENARIOS)
    if unknown:
        p.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    rates = [args.rate] if args.rate else [float(r) for r in args.rates.split(",") if r]
    root = Path(tempfile.mkdtemp(prefix="upi-rewards-bench-"))
    log(f"scratch {root}; generating {args.count:,} events over {args.users:,} users")
    feed = list(generate(args.count, args.seed, users=args.users, fraud_share=0.01))
    res: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_at_start": load_avg(),
        },
        "broker": make_broker(ENGINE).description,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    runs: dict[str, Callable[[], dict[str, Any]]] = {
        "core": lambda: bench_core(feed),
        "ceiling": lambda: bench_ceiling(root, feed),
        "bare": lambda: bench_bare(root, feed),
        "textbook": lambda: bench_textbook(root, feed),
        "pipeline": lambda: bench_pipeline(root, feed, args.profile),
        "pipeline2": lambda: bench_pipeline(root, feed, False, workers=2),
        "pipeline_eos": lambda: bench_pipeline(
            root,
            feed,
            False,
            extra_env={"REWARDS_PROCESSING_GUARANTEE": "exactly_once"},
            name="pipeline_eos",
        ),
        "latency": lambda: bench_latency(
            root,
            list(
                generate(
                    int((sum(rates) * args.latency_seconds + rates[0] * WARM_UP_S) * 1.05) + 100,
                    args.seed + 1,
                    users=args.users,
                    fraud_share=0.01,
                )
            ),
            rates,
            args.latency_seconds,
        ),
        "warm": lambda: bench_warm(root, args.warm_users),
        "fresh": lambda: bench_fresh(root, args.recovery_users),
        "standby": lambda: bench_standby(root, args.warm_users),
    }
    try:
        for name in SCENARIOS:
            if name in only:
                started = time.time()
                try:
                    res[name] = runs[name]()
                except (RuntimeError, TimeoutError) as exc:  # one failure: the rest still run
                    res.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"
                    log(f"{name} FAILED: {exc}")
                    print_log_tails(started)  # the next run of the scenario replaces its logs
                    continue
                log(f"{name}: {res[name]}")
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
        if not args.profile:
            shutil.rmtree(root, ignore_errors=True)
    print(f"broker: {res['broker']}")
    print(table(res))
    for name, why in res.get("failed", {}).items():
        print(f"\n{name} failed: {why}")
    print(
        f"\nJSON: {args.out}"
        + (f"; profile {root}/pipeline/profile.txt (bench.profile_summary)" * args.profile)
    )
    return 1 if res.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
