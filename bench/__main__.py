"""``python -m bench`` / ``make bench``: every figure of docs/performance.md in one run.

Each scenario gets a fresh broker (topologies/broker.py; ``--engine tansu``,
the default, Tansu in memory, or ``--engine kafka``, Apache Kafka) on a free
port and the *same* feed bytes (rewards.feedgen), produced before the consumer
starts:

0. ``core``      the pure core alone, no broker, no Faust: ``rewards.simulate``
   (validate, rules, caps, dedupe, fraud windows, circular pairs) over the
   feed in one process. No worker running this core can go faster;
1. ``ceiling``   raw aiokafka consume -> produce pass-through (bench/passthrough.py);
2. ``textbook``  a textbook Faust agent doing a reward job (bench/textbook.py);
3. ``pipeline``  one upi-rewards worker end to end (validate, rules, caps,
   dedupe, fraud windows, circular pairs, grants, decisions), then ``du`` of
   its data dir (state on disk per 100,000 users touched);
4. ``latency``   the worker under a producer paced at ``--rate`` ev/s: produce
   timestamp (CreateTime set by the feed producer) -> the decision's
   CreateTime (set by the worker's producer when it sends), matched per txn_id;
5. ``recovery``  the user-state changelog filled directly with records made by
   the pure core (a realistic feed through ``rewards.simulate``, each user's
   records copied under new VPAs up to ``--recovery-users``); a fresh worker
   with an empty data dir is timed to "Recovery complete", then restarted on
   its warm rocksdict dir and timed again.

Throughput is ``events / (last output - first output)`` from the broker
records' timestamps, so worker start-up and group join are not counted, the
same way for all three. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from rewards.feedgen import FeedMessage, generate
from rewards.ledger import SEP, MemoryState
from rewards.rulebook import load_rules
from rewards.simulate import simulate
from topologies import topics
from topologies.admin import assign_from_start, ensure_topics
from topologies.broker import ENGINES, Broker, engine_from_env, free_port, make_broker
from topologies.processes import stop_process
from topologies.settings import DEFAULT_RULES

PARTITIONS = 8
ROOT = Path(__file__).resolve().parent.parent
PASSTHROUGH_OUT = "bench.passthrough"
TEXTBOOK_OUT = "bench.textbook-decisions"
CHANGELOG = "upi-rewards-user-state-changelog"
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
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.broker.stop()


def new_run(root: Path, name: str) -> Run:
    work = root / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    broker = make_broker(ENGINE, port=free_port(), log=work / "broker.log").start()
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
        try:
            started = time.monotonic()
            for i, (topic, key, value, partition) in enumerate(records):
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
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap],
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        check_crcs=False,  # kafka-python's CRC is pure Python: minutes for 200k records
        fetch_max_bytes=32 * 1024 * 1024,
    )
    assign_from_start(consumer, names)
    out: list[tuple[str, int, bytes | None, bytes | None]] = []
    deadline = time.monotonic() + timeout
    quiet_until = None
    try:
        while True:
            got = 0
            for tp, batch in consumer.poll(timeout_ms=300, max_records=20_000).items():
                out.extend((tp.topic, r.timestamp, r.key, r.value) for r in batch)
                got += len(batch)
            if len(out) >= expected:
                if got == 0:
                    quiet_until = quiet_until or time.monotonic() + 1.0
                    if time.monotonic() > quiet_until:
                        return out
                else:
                    quiet_until = None
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {len(out)} of {expected} records from {names}")
    finally:
        consumer.close()


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
    95th percentile outputs (steady state: no ramp-up or tail), and the per-second
    output counts so stalls show."""
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
    }


def worker_env(run: Run, data_dir: Path, web_port: int) -> dict[str, str]:
    return {
        "REWARDS_KAFKA_BOOTSTRAP_SERVERS": run.bootstrap,
        "REWARDS_WEB_PORT": str(web_port),
        "REWARDS_DATA_DIR": str(data_dir),
        "REWARDS_PARTITIONS": str(PARTITIONS),
        "REWARDS_RULES_FILE": str(DEFAULT_RULES),
    }


def metric_total(port: int, names: tuple[str, ...]) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            text = resp.read().decode()
    except OSError:
        return 0
    total = 0.0
    for line in text.splitlines():
        if line.startswith(names) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


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
    a shared box wall time mostly measures the neighbours.
    """
    book = load_rules(DEFAULT_RULES)
    values = [m.value for m in feed]
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        sim = simulate(values, book)
        best = min(best, time.process_time() - started)
    return {
        "events": len(values),
        "events_per_s": round(len(values) / best),
        "us_per_event": round(best * 1e6 / len(values), 1),
        "decisions": len(sim.effects),
        "dead_letters": len(sim.dead_letters),
        "rounds": rounds,
        "load_avg": load_avg(),
    }


def bench_ceiling(root: Path, feed: list[FeedMessage]) -> dict[str, Any]:
    run = new_run(root, "ceiling")
    try:
        produce(run.bootstrap, feed)
        log(f"ceiling: {len(feed):,} events produced; pass-through running (load {load_avg()})")
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
            ],
            {},
            "passthrough",
        )
        if proc.wait(timeout=1800) != 0:
            raise RuntimeError("pass-through failed; see its log")
        out = read_topics(run.bootstrap, [PASSTHROUGH_OUT], len(feed))
        result = rate([r[1] for r in out], len(feed))
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
        wait_quiet(
            lambda: end_offsets_total(run.bootstrap, [TEXTBOOK_OUT]), 60.0, 3600, proc, len(feed)
        )
        if proc.poll() is not None:
            raise RuntimeError("textbook worker died; see its log")
        run.stop(proc)
        valid = sum(m.valid for m in feed)
        out = read_topics(run.bootstrap, [TEXTBOOK_OUT], 1)
        result = rate([r[1] for r in out], len(out))
        result["valid_events"] = valid
        result["load_avg"] = load_avg()
        return result
    finally:
        run.close()


def start_worker(
    run: Run, data_dir: Path, name: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = run.spawn(
        ["-m", "topologies.cli", "worker"],
        {**worker_env(run, data_dir, port), **(extra_env or {})},
        name,
    )
    return proc, port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_cpu(proc: subprocess.Popen[bytes], port: int, total: int) -> dict[str, Any]:
    """Wait until the worker accounted for ``total`` messages; its CPU per event meanwhile.

    CPU time per event is the figure that survives a shared, noisy box: wall
    throughput also measures the neighbours, CPU time mostly the worker's own
    work. Counted from the first accounted message (start-up and group join left out).
    """
    first: list[tuple[float, float, int]] = []
    last = [0]

    def accounted() -> bool:
        last[0] = metric_total(port, ACCOUNTED)
        if not first and last[0] > 0:
            first.append((time.monotonic(), cpu_seconds(proc.pid), last[0]))
        return last[0] >= total

    wait_for(accounted, 3600, "pipeline", proc)
    wall, cpu = time.monotonic(), cpu_seconds(proc.pid)
    t0, cpu0, start = first[0]
    events = max(last[0] - start, 1)
    return {
        "events": events,
        "cpu_us_per_event": round((cpu - cpu0) * 1e6 / events),
        "cpu_share_of_one_core": round((cpu - cpu0) / max(wall - t0, 1e-9), 2),
        "events_per_cpu_s": round(events / max(cpu - cpu0, 1e-9)),
    }


def du_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bench_pipeline(root: Path, feed: list[FeedMessage], profile: bool) -> dict[str, Any]:
    run = new_run(root, "pipeline")
    try:
        produce(run.bootstrap, feed)
        users = {orjson.loads(m.value)["payer_vpa"].lower() for m in feed if m.valid and m.value}
        log(
            f"pipeline: {len(feed):,} events ({len(users):,} payers) produced; worker running "
            f"(load {load_avg()})"
        )
        data_dir = run.work / "state"
        proc, port = start_worker(run, data_dir, "worker")
        spy = None
        if profile:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--format",
                    "raw",
                    "--idle",
                    "-o",
                    str(run.work / "profile.txt"),
                    "--pid",
                    str(proc.pid),
                    "--rate",
                    "50",
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        cpu = worker_cpu(proc, port, len(feed))
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        out = read_topics(run.bootstrap, [topics.DECISIONS, topics.DEAD_LETTERS], len(feed))
        result = rate([r[1] for r in out], len(feed))
        result["accounted"] = len(out) == len(feed)
        result["load_avg"] = load_avg()
        result["worker_cpu"] = cpu
        result["worker_latency_histogram"] = "see latency scenario"
        run.stop(proc)  # rocksdict flushes on a clean stop
        size = du_bytes(data_dir)
        result["state"] = {
            "users": len(users),
            "bytes_on_disk": size,
            "bytes_per_100k_users": round(size * 100_000 / max(len(users), 1)),
        }
        return result
    finally:
        run.close()


def bench_latency(root: Path, feed: list[FeedMessage], offered: float) -> dict[str, Any]:
    run = new_run(root, "latency")
    try:
        data_dir = run.work / "state"
        proc, port = start_worker(run, data_dir, "worker")
        # Warm up: the first 2% of the feed through every stage, then a pause, so
        # start-up rebalances (Faust creates internal topics) are over before the
        # clock starts.
        warm = max(len(feed) // 50, 1)
        produce(run.bootstrap, feed[:warm])
        wait_for(lambda: metric_total(port, ACCOUNTED) >= warm, 300, "warm-up", proc)
        time.sleep(5)
        rest = feed[warm:]
        log(f"latency: {len(rest):,} events at {offered:,.0f} ev/s (load {load_avg()})")
        started = time.monotonic()
        stamps = produce_records(
            run.bootstrap, ((topics.TRANSACTIONS, m.key, m.value, None) for m in rest), offered
        )
        sent: dict[str, list[int]] = defaultdict(list)
        for m, ts in zip(rest, stamps, strict=True):
            if m.valid and m.value:
                sent[orjson.loads(m.value)["txn_id"]].append(ts)
        achieved = len(rest) / (time.monotonic() - started)
        wait_for(lambda: metric_total(port, ACCOUNTED) >= len(feed), 600, "latency drain", proc)
        out = read_topics(run.bootstrap, [topics.DECISIONS], 1)
        lat: list[int] = []
        for _, ts, _, value in sorted(out, key=lambda r: r[1]):
            txn_id = orjson.loads(value or b"{}")["txn_id"]
            pending = sent.get(txn_id)
            if pending:
                lat.append(ts - pending.pop(0))
        lat.sort()

        def pct(q: float) -> int:
            return lat[min(int(q * len(lat)), len(lat) - 1)]

        return {
            "offered_per_s": offered,
            "achieved_per_s": round(achieved),
            "matched": len(lat),
            "warm_up_events": warm,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": lat[-1],
            "measured": "feed producer CreateTime -> decision record CreateTime (worker send)",
            "load_avg": load_avg(),
        }
    finally:
        run.close()


def user_templates(book_path: Path, count: int) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """Each user's records after a realistic feed, as the pure core writes them."""
    book = load_rules(book_path)
    feed = generate(count, seed=7, users=count // 2, fraud_share=0.01)
    sim = simulate((m.value for m in feed), book)
    state: MemoryState = sim.state
    per_user: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    for key, value in state.items():
        if key.startswith("\x00"):
            continue
        per_user[key.split(SEP, 1)[0]].append((key.encode(), value))
    return sorted(per_user.items())


def fill_changelog(bootstrap: str, users: int) -> dict[str, Any]:
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
                k = news + key[len(olds) :]
                v = value.replace(olds, news)
                records += 1
                size += len(k) + len(v)
                yield CHANGELOG, k, v, partition

    produce_records(bootstrap, build())
    return {"users": users, "records": records, "bytes": size, "template_users": len(templates)}


def time_recovery(run: Run, data_dir: Path, name: str) -> float:
    started = time.monotonic()
    proc, _ = start_worker(run, data_dir, name)
    logfile = run.work / f"{name}.log"
    wait_for(
        lambda: "Recovery complete" in logfile.read_text(errors="replace"),
        3600,
        f"{name} recovery",
        proc,
    )
    seconds = time.monotonic() - started
    run.stop(proc)
    return seconds


def bench_recovery(root: Path, users: int) -> dict[str, Any]:
    run = new_run(root, "recovery")
    try:
        # An empty start first: the fixed cost (imports, group join) of any start.
        empty = time_recovery(run, run.work / "empty-state", "empty")
        ensure_topics([run.bootstrap], {CHANGELOG: PARTITIONS})
        log(f"recovery: filling the changelog for {users:,} users (load {load_avg()})")
        filled = fill_changelog(run.bootstrap, users)
        data_dir = run.work / "state"
        log(f"recovery: {filled['records']:,} changelog records; cold start (load {load_avg()})")
        cold = time_recovery(run, data_dir, "cold")
        size = du_bytes(data_dir)
        warm = time_recovery(run, data_dir, "warm")
        return {
            **filled,
            "empty_start_s": round(empty, 1),
            "cold_recovery_s": round(cold, 1),
            "warm_restart_s": round(warm, 1),
            "bytes_on_disk": size,
            "bytes_per_100k_users": round(size * 100_000 / users),
            "measured": "worker process start -> Faust 'Recovery complete' log line",
            "load_avg": load_avg(),
        }
    finally:
        run.close()


# --- report --------------------------------------------------------------------------------


def table(res: dict[str, Any]) -> str:
    rows = ["| what | figure | notes |", "|---|---|---|"]
    c, t, p = res.get("ceiling"), res.get("textbook"), res.get("pipeline")
    k = res.get("core")
    if k:
        rows.append(
            f"| pure core alone (no broker, no Faust) | {k['events_per_s']:,} ev/s | "
            f"{k['us_per_event']} CPU µs/event, best of {k['rounds']}, load {k['load_avg']} |"
        )
    if c:
        rows.append(
            f"| transport ceiling (aiokafka pass-through) | {c['events_per_s']:,} ev/s | "
            f"{c['events']:,} events, load {c['load_avg']} |"
        )
    if t:
        rows.append(
            f"| textbook Faust agent | {t['events_per_s']:,} ev/s | "
            f"{t['outputs']:,} decisions, load {t['load_avg']} |"
        )
    if p:
        rows.append(
            f"| upi-rewards end to end | **{p['events_per_s']:,} ev/s** | "
            f"{p['events']:,} events, accounted {p['accounted']}, load {p['load_avg']} |"
        )
        w = p.get("worker_cpu") or {}
        if w:
            rows.append(
                f"| upi-rewards worker CPU per event | {w['cpu_us_per_event']:,} µs "
                f"({w['events_per_cpu_s']:,} ev per CPU second) | worker at "
                f"{w['cpu_share_of_one_core']:.0%} of one core |"
            )
        if c:
            rows.append(
                f"| upi-rewards / ceiling | {p['events_per_s'] / c['events_per_s']:.0%} | |"
            )
        if t:
            rows.append(
                f"| upi-rewards / textbook | {p['events_per_s'] / t['events_per_s']:.1f}x | |"
            )
        s = p["state"]
        rows.append(
            f"| state on disk per 100k users (feed) | {s['bytes_per_100k_users'] / 1e6:.1f} MB"
            f" | du {s['bytes_on_disk'] / 1e6:.1f} MB for {s['users']:,} payers |"
        )
    lat = res.get("latency")
    if lat:
        rows.append(
            f"| latency at {lat['offered_per_s']:,.0f} ev/s offered | p50 {lat['p50_ms']} ms,"
            f" p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms | {lat['matched']:,} "
            f"decisions, achieved {lat['achieved_per_s']:,} ev/s, load {lat['load_avg']} |"
        )
    r = res.get("recovery")
    if r:
        rows.append(
            f"| recover {r['users']:,} users, empty data dir | {r['cold_recovery_s']} s | "
            f"{r['records']:,} changelog records ({r['bytes'] / 1e6:.0f} MB); empty-state "
            f"start {r['empty_start_s']} s; load {r['load_avg']} |"
        )
        rows.append(f"| restart on warm rocksdict dir | {r['warm_restart_s']} s | |")
        rows.append(
            f"| state on disk per 100k users (recovered) | "
            f"{r['bytes_per_100k_users'] / 1e6:.1f} MB | |"
        )
    return "\n".join(rows)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, help="events for the throughput runs (200,000)")
    p.add_argument("--users", type=int, help="distinct users in the feed (100,000)")
    p.add_argument("--rate", type=float, default=2000.0, help="offered load of the latency run")
    p.add_argument("--latency-seconds", type=float, help="length of the latency run (30)")
    p.add_argument("--recovery-users", type=int, help="users in the recovered state (1,000,000)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="defaults for a short run: 20k events over 20k users, 10 s of latency, "
        "100k users to recover",
    )
    p.add_argument(
        "--only",
        default="core,ceiling,textbook,pipeline,latency,recovery",
        help="comma-separated scenarios to run",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the pipeline worker")
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
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: brokers and workers too
    quick, full = (20_000, 20_000, 10.0, 100_000), (200_000, 100_000, 30.0, 1_000_000)
    defaults = quick if args.quick else full
    for name, default in zip(
        ("count", "users", "latency_seconds", "recovery_users"), defaults, strict=True
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    only = set(args.only.split(","))
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
    try:
        if "core" in only:
            res["core"] = bench_core(feed)
            log(f"core: {res['core']}")
        if "ceiling" in only:
            res["ceiling"] = bench_ceiling(root, feed)
            log(f"ceiling: {res['ceiling']}")
        if "textbook" in only:
            res["textbook"] = bench_textbook(root, feed)
            log(f"textbook: {res['textbook']}")
        if "pipeline" in only:
            res["pipeline"] = bench_pipeline(root, feed, args.profile)
            log(f"pipeline: {res['pipeline']}")
        if "latency" in only:
            n = int(args.rate * args.latency_seconds)
            lat_feed = list(generate(n, args.seed + 1, users=args.users, fraud_share=0.01))
            res["latency"] = bench_latency(root, lat_feed, args.rate)
            log(f"latency: {res['latency']}")
        if "recovery" in only:
            res["recovery"] = bench_recovery(root, args.recovery_users)
            log(f"recovery: {res['recovery']}")
    finally:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2) + b"\n")
        if not args.profile:
            shutil.rmtree(root, ignore_errors=True)
    print(f"broker: {res['broker']}")
    print(table(res))
    print(
        f"\nJSON: {args.out}"
        + (f"; profile {root}/pipeline/profile.txt (bench.profile_summary)" * args.profile)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
