"""Plumbing for the fault-injection suite: a real broker, real workers, the wallet, the oracle.

Nothing is mocked. A scenario starts a broker (REWARDS_TEST_BROKER: tansu or kafka) and worker
processes (``python -m tools.cli worker``), produces a generated feed,
injects its fault (kill -9, SIGSTOP of the broker, SIGTERM, hostile bytes),
waits until the consumer group has committed every input it was given, then
runs the reference wallet (``upi-rewards wallet``) over ``rewards.coin-grants``
and compares the wallet's balance per user with a replay of the feed — read
back from the broker in partition/offset order — through the pure core
(``rewards.simulate``). The feed is keyed by payer, so that order is each
user's processing order and the comparison is exact.

Figures go into a ``Report`` (printed by pytest with ``-s`` and as a table by
``python -m tests.chaos``). Reports and failure messages carry counts only,
never a VPA.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from brokers.launcher import Broker, engine_from_env, free_port, make_broker
from rewards.rulebook import RuleBook, load_rules
from rewards.simulate import Simulation, simulate
from rewards.state import comparable, decode_user
from tests.integration.conftest import Worker, WorkerFactory
from tools.feed import FeedStats, produce_feed
from tools.feedgen import generate
from tools.processes import stop_process
from tools.topic_io import TopicReader, read_to_end
from tools.wallet_ledger import Totals, WalletLedger
from topologies import topics
from topologies.admin import ensure_topics
from topologies.security import kafka_python_options
from topologies.settings import DEFAULT_RULES

GROUP = "upi-rewards"  # the workers' consumer group (Settings.app_id)
EDGE_GROUP = topics.Internal(GROUP).edge_group  # the ingest edge's group on the feed
INTERNAL = (f"{GROUP}.txns-by-payer", f"{GROUP}.payments-by-pair")


@dataclass
class Report:
    """What a scenario did and measured; ``rows`` keep insertion order for printing."""

    name: str
    rows: dict[str, object] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def add(self, **figures: object) -> None:
        self.rows.update(figures)

    def finish(self) -> Report:
        self.rows["seconds"] = round(time.monotonic() - self.started, 1)
        return self

    def text(self) -> str:
        width = max((len(k) for k in self.rows), default=0)
        lines = [f"== chaos: {self.name}"]
        lines += [f"   {k:<{width}} : {v}" for k, v in self.rows.items()]
        return "\n".join(lines)

    def log(self, message: str) -> None:
        """Progress line (counts only), so a long run shows what it is doing."""
        print(f"   [{time.monotonic() - self.started:6.1f}s] {self.name}: {message}", flush=True)


# --------------------------------------------------------------------------- cluster


@dataclass
class Cluster:
    broker: Broker
    workers: WorkerFactory
    tmp: Path
    feed_partitions: int
    partitions: int

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    #: extra worker environment (e.g. REWARDS_PROCESSING_GUARANTEE=exactly_once)
    env: dict[str, str] = field(default_factory=dict)

    def start_worker(self, data_dir: Path | None = None) -> Worker:
        return self.workers.start(
            "--partitions", str(self.partitions), data_dir=data_dir, env=self.env or None
        )


@contextmanager
def cluster(
    name: str, feed_partitions: int = 4, partitions: int = 4, keep: bool = False
) -> Iterator[Cluster]:
    """A fresh broker (own port, empty; engine from REWARDS_TEST_BROKER) and a worker
    factory; everything stopped after."""
    tmp = Path(tempfile.mkdtemp(prefix=f"chaos-{name}-"))
    broker = make_broker(engine_from_env(), port=free_port(), log=tmp / "broker.log")
    broker.start()
    factory = WorkerFactory(broker, tmp)
    try:
        ensure_topics(
            [broker.bootstrap],
            {topics.TRANSACTIONS: feed_partitions, **{t: partitions for t in topics.OUTPUTS}},
        )
        yield Cluster(broker, factory, tmp, feed_partitions, partitions)
    except BaseException:
        keep = True  # the broker's and workers' logs, for the failure
        print(f"chaos {name}: failed; logs kept in {tmp}")
        raise
    finally:
        factory.stop_all()
        if broker.proc is not None and broker.proc.poll() is None:
            os.kill(broker.proc.pid, signal.SIGCONT)  # in case a stall test failed mid-stop
        broker.stop()
        if os.environ.get("CHAOS_KEEP_LOGS") == "1":
            keep = True
            print(f"chaos {name}: logs kept in {tmp} (CHAOS_KEEP_LOGS=1)")
        if not keep:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)


# --------------------------------------------------------------------------- feed


class Feeder:
    """Produce the generated feed (keyed by payer) in a background thread."""

    def __init__(
        self,
        bootstrap: str,
        count: int,
        seed: int,
        rate: float = 0.0,
        fraud_share: float = 0.01,
        bad_share: float = 0.01,
    ) -> None:
        self.stats: FeedStats | None = None
        self.error: BaseException | None = None
        self.truth: dict[str, str] = {}
        #: The messages in produce order (generation is deterministic per arguments).
        self.values: list[bytes | None] = [
            m.value for m in generate(count, seed, bad_share=bad_share, fraud_share=fraud_share)
        ]

        def run() -> None:
            try:
                self.stats = produce_feed(
                    [bootstrap],
                    count,
                    seed=seed,
                    rate=rate,
                    bad_share=bad_share,
                    fraud_share=fraud_share,
                    truth=self.truth,
                    key_by_payer=True,
                )
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True, name="chaos-feeder")
        self.thread.start()

    def join(self, timeout: float = 600.0) -> FeedStats:
        self.thread.join(timeout)
        if self.error is not None:
            raise AssertionError(f"the feed failed: {self.error!r}")
        assert self.stats is not None, "the feed did not finish in time"
        return self.stats


def read_topic(
    bootstrap: str,
    topic: str,
    expect: int | None = None,
    timeout: float = 120.0,
    isolation_level: str = "read_uncommitted",
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``topic`` as (partition, offset, key, value), in partition/offset order.

    ``assign()`` and no group; reads until ``expect`` records (if given) and then
    until a quiet second. Counts come from consuming, never from end offsets.
    """
    with TopicReader([bootstrap], [topic], isolation_level=isolation_level) as reader:
        records = reader.drain(expect, timeout)
    return sorted((r.partition, r.offset, r.key, r.value) for _, r in records)


def replay(values: Iterable[bytes | None], book: RuleBook | None = None) -> Simulation:
    """The pure core over the feed, in the order given (partition/offset order)."""
    return simulate(list(values), book or load_rules(DEFAULT_RULES))


# --------------------------------------------------------------------------- progress


class Tally:
    """Counts records per topic as they land (and keeps dead letters' feed positions)."""

    def __init__(
        self,
        bootstrap: str,
        names: Iterable[str] = topics.OUTPUTS,
        isolation_level: str = "read_uncommitted",
    ) -> None:
        self.reader = TopicReader([bootstrap], names, isolation_level=isolation_level)
        self.counts: dict[str, int] = dict.fromkeys(self.reader.topics, 0)
        self.grant_ids: dict[str, int] = {}
        self.letters: list[dict[str, object]] = []
        self.decisions: list[dict[str, object]] = []
        self.decision_bytes: list[bytes] = []
        self.alerts: list[bytes] = []
        self.grant_bytes: list[bytes] = []

    def poll(self, timeout_ms: int = 200) -> int:
        got = 0
        for tp, records in self.reader.fetch(timeout_ms=timeout_ms).items():
            self.counts[tp.topic] += len(records)
            got += len(records)
            for r in records:
                if tp.topic == topics.DEAD_LETTERS:
                    self.letters.append(orjson.loads(r.value))
                elif tp.topic == topics.DECISIONS:
                    self.decisions.append(orjson.loads(r.value))
                    self.decision_bytes.append(bytes(r.value))
                elif tp.topic == topics.COIN_GRANTS:
                    self.grant_bytes.append(bytes(r.value))
                    gid = str(orjson.loads(r.value)["grant_id"])
                    self.grant_ids[gid] = self.grant_ids.get(gid, 0) + 1
                elif tp.topic == topics.FRAUD_ALERTS:
                    self.alerts.append(bytes(r.value))
        return got

    def wait(self, topic: str, at_least: int, timeout: float, why: str = "") -> None:
        deadline = time.monotonic() + timeout
        while self.counts[topic] < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{why}: {topic} has {self.counts[topic]} records, waited for {at_least}"
                )
            self.poll()

    def settle(self, quiet_s: float = 2.0) -> None:
        quiet_until = time.monotonic() + quiet_s
        while time.monotonic() < quiet_until:
            if self.poll():
                quiet_until = time.monotonic() + quiet_s

    def read_to_end(self, timeout: float = 120.0) -> None:
        """Poll until every output partition is read to its fetch high watermark."""
        read_to_end(self.reader, self.poll, timeout)

    def close(self) -> None:
        self.reader.close()


class Ends:
    """Per partition, the offset after the last record, learnt by consuming (not ListOffsets)."""

    def __init__(
        self, bootstrap: str, names: Iterable[str], isolation_level: str = "read_uncommitted"
    ) -> None:
        self.bootstrap = bootstrap
        self.names = list(names)
        self.consumer = KafkaConsumer(
            bootstrap_servers=[bootstrap],
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation_level,
            **kafka_python_options(),
        )
        self.ends: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()

    def _assign(self) -> None:
        self.consumer.topics()  # refresh metadata: internal topics appear once a worker runs
        tps = {
            TopicPartition(t, p)
            for t in self.names
            for p in (self.consumer.partitions_for_topic(t) or ())
        }
        if tps != self.assigned:
            self.consumer.assign(sorted(tps))
            for tp in tps - self.assigned:
                self.consumer.seek_to_beginning(tp)
            self.assigned = tps

    def poll(self) -> None:
        self._assign()
        while True:
            got = self.consumer.poll(timeout_ms=300, max_records=50_000)
            if not got:
                return
            for tp, records in got.items():
                self.ends[tp] = max(self.ends.get(tp, 0), records[-1].offset + 1)

    def close(self) -> None:
        self.consumer.close()


def committed(
    bootstrap: str, groups: tuple[str, ...] = (GROUP, EDGE_GROUP)
) -> dict[TopicPartition, int]:
    """Committed offsets of the workers: the feed by the ingest edge, the rest by Faust."""
    admin = KafkaAdminClient(
        bootstrap_servers=[bootstrap], request_timeout_ms=10_000, **kafka_python_options()
    )
    try:
        out: dict[TopicPartition, int] = {}
        for group in groups:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
            out.update({tp: int(m.offset) for tp, m in offsets.items() if m.offset >= 0})
        return out
    finally:
        admin.close()


def wait_drained(
    bootstrap: str,
    timeout: float,
    report: Report | None = None,
    isolation_level: str = "read_uncommitted",
) -> float:
    """Block until the workers' group has committed every record of the feed and internal
    topics, twice in a row a few seconds apart (so in-flight hops have landed too).

    Faust commits an input offset only after the producer flushed the outputs
    of that input, so this is "everything given was processed", learnt from
    the broker. Returns the seconds waited. With transactions
    (``exactly_once``), ``read_committed``: the end is the offset after the last
    committed record (a stage commits that, never a marker's offset).
    """
    started = time.monotonic()
    ends = Ends(bootstrap, (topics.TRANSACTIONS, *INTERNAL), isolation_level)
    stable = 0
    last_note = started
    try:
        while True:
            ends.poll()
            try:
                done = committed(bootstrap)
            except KafkaError:  # the coordinator may be busy rebalancing; ask again
                done = {}
            behind = sum(max(end - done.get(tp, 0), 0) for tp, end in ends.ends.items())
            stable = stable + 1 if behind == 0 and ends.ends else 0
            if stable >= 2:
                return time.monotonic() - started
            now = time.monotonic()
            if now - started > timeout:
                raise AssertionError(f"not drained after {timeout:.0f}s: {behind} records behind")
            if report is not None and now - last_note > 15:
                report.log(f"waiting for the group to commit: {behind} records behind")
                last_note = now
            time.sleep(3.0 if behind == 0 else 1.0)
    finally:
        ends.close()


# --------------------------------------------------------------------------- wallet


@dataclass
class WalletProcess:
    """The reference wallet as a real process (``upi-rewards wallet``)."""

    bootstrap: str
    db: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    kills: int = 0
    read_committed: bool = False

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "tools.cli",
            "wallet",
            "--db",
            str(self.db),
            "--bootstrap",
            self.bootstrap,
            *(("--read-committed",) if self.read_committed else ()),
            *extra,
        ]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def catch_up(self, idle_s: float = 3.0) -> str:
        """Run to the end of the topic (``--until-idle``) and return the printed summary."""
        self.stop()
        done = subprocess.run(
            self.command("--until-idle", str(idle_s), "--summary"),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return done.stdout

    def grants_of(self, user: str) -> list[tuple[str, str, int, str]]:
        ledger = WalletLedger(self.db)
        try:
            rows = ledger.conn.execute(
                "SELECT grant_id, kind, coins, reason FROM ledger WHERE user_vpa = ?", (user,)
            )
            return [(str(a), str(b), int(c), str(d)) for a, b, c, d in rows]
        finally:
            ledger.close()

    def read(self) -> tuple[dict[str, int], Totals]:
        ledger = WalletLedger(self.db)
        try:
            return ledger.balances(), ledger.totals()
        finally:
            ledger.close()


# --------------------------------------------------------------------------- checks


def nonzero(balances: dict[str, int]) -> dict[str, int]:
    return {u: b for u, b in balances.items() if b}


def compare_balances(
    got: dict[str, int],
    want: dict[str, int],
    explain: Callable[[list[str]], str] | None = None,
) -> None:
    """Exact equality per user; the failure message has counts and coin totals, no VPA
    (``explain`` may add per-user evidence, with users numbered, not named)."""
    got, want = nonzero(got), nonzero(want)
    if got == want:
        return
    users = set(got) | set(want)
    wrong = [u for u in users if got.get(u, 0) != want.get(u, 0)]
    more = sum(max(got.get(u, 0) - want.get(u, 0), 0) for u in wrong)
    less = sum(max(want.get(u, 0) - got.get(u, 0), 0) for u in wrong)
    raise AssertionError(
        f"wallet balances differ from the pure core for {len(wrong)} of {len(users)} users: "
        f"{more} coins too many (doubled), {less} coins missing (lost)"
        + (("\n" + explain(sorted(wrong)[:5])) if explain else "")
    )


def metric(worker: Worker, name: str) -> float:
    """Sum of one metric family on a live worker.

    Raises AssertionError when the worker does not answer or has no such family:
    a dead worker must never read as "0 replays skipped".
    """
    try:
        text = worker.metrics()
    except OSError as exc:
        raise AssertionError(f"{name}: the worker's /metrics did not answer ({exc!r})") from None
    total, found = 0.0, False
    for line in text.splitlines():
        if re.match(rf"^{name}(\{{| )", line):
            total += float(line.rsplit(" ", 1)[1])
            found = True
        elif line.startswith(f"# TYPE {name} "):  # a labelled family with no series yet
            found = True
    assert found, f"{name}: no such metric on the worker's /metrics"
    return total


def locate(
    produced: list[bytes | None], feed: list[tuple[int, int, bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Match each produced message to its (partition, offset) on the broker.

    Asserts the topic holds exactly the produced messages and that each
    partition keeps produce order (so every user's events, keyed by payer, are
    read by the worker in produce order).
    """
    assert len(feed) == len(produced), f"topic has {len(feed)} messages, produced {len(produced)}"
    # A tombstone and an empty value may come back as either; both are "EMPTY".
    indices: dict[bytes | None, list[int]] = {}
    for i, value in enumerate(produced):
        indices.setdefault(value or None, []).append(i)
    cursor = dict.fromkeys(indices, 0)
    where: list[tuple[int, int] | None] = [None] * len(produced)
    last: dict[int, int] = {}
    for partition, offset, _, raw in feed:
        value = raw or None
        pool = indices.get(value)
        assert pool is not None, f"{topics.TRANSACTIONS}[{partition}]@{offset} was never produced"
        assert cursor[value] < len(pool), f"{topics.TRANSACTIONS}[{partition}]@{offset}: extra copy"
        i = pool[cursor[value]]
        cursor[value] += 1
        if len(pool) == 1:  # unique messages must keep produce order within a partition
            assert i > last.get(partition, -1), (
                f"{topics.TRANSACTIONS}[{partition}] is not in produce order at offset {offset}"
            )
            last[partition] = i
        where[i] = (partition, offset)
    located = [w for w in where if w is not None]
    assert len(located) == len(produced)
    return located


CHANGELOG = f"{GROUP}-user-state-changelog"


def changelog_state(bootstrap: str, isolation_level: str = "read_uncommitted") -> dict[str, bytes]:
    """The user-state table as a replacement machine would recover it: the changelog,
    last value per key, tombstones deleting."""
    state: dict[str, bytes] = {}
    for _, _, key, value in read_topic(bootstrap, CHANGELOG, isolation_level=isolation_level):
        name = (key or b"").decode()
        if value is None:
            state.pop(name, None)
        else:
            state[name] = value
    return state


def compare_state(
    changelog: dict[str, bytes],
    sim: Simulation,
    skip_users: set[str],
) -> int:
    """The changelog must hold exactly the core's final state, per user record.

    Compared without the replay marks (the worker's sources are real feed
    positions, the replay's are produce indices). Users in ``skip_users``
    (circular farmers: their flags arrive at another point than in the replay,
    which changes holds, not coins) are left out. Returns the users compared.
    """
    want = {vpa: comparable(state) for vpa, state in sim.state.items() if vpa not in skip_users}
    got = {
        vpa: comparable(decode_user(raw)) for vpa, raw in changelog.items() if vpa not in skip_users
    }
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    differ = [k for k in want if k in got and got[k] != want[k]]
    if missing or extra or differ:
        raise AssertionError(
            f"the changelog (what a replacement machine recovers) differs from the core's state: "
            f"{len(missing)} users missing, {len(extra)} extra, {len(differ)} different "
            f"(of {len(want)} users)"
        )
    return len(want)


def _one_content_per_id(records: Iterable[bytes], field: str) -> dict[str, set[bytes]]:
    """The distinct records per ``field`` value; each id must have one content."""
    by_id: dict[str, set[bytes]] = {}
    for raw in records:
        by_id.setdefault(str(orjson.loads(raw)[field]), set()).add(raw)
    assert all(len(v) == 1 for v in by_id.values()), f"a repeated {field} with other content"
    return by_id


def _as_the_core(want: dict[str, bytes], got: dict[str, set[bytes]], what: str) -> None:
    wrong = [k for k, v in want.items() if got.get(k) != {v}]
    assert not wrong, f"{len(wrong)} {what} missing or differing from the core's bytes"


def one_story(sim: Simulation, tally: Tally, skip_users: set[str]) -> dict[str, int]:
    """A replay repeats the first pass's outputs byte for byte, or emits nothing new.

    Per (user, txn_id) the distinct decision records must be exactly the core's
    (a resend has its own DUPLICATE decision; a crash replay must add no
    other); per alert_id one distinct alert record. Circular farmers are left
    out (their flags land at another point than in the replay: holds differ).
    """
    want: dict[tuple[str, str], set[bytes]] = {}
    for e in sim.effects:
        d = e.decision
        if d is not None and d.user_vpa not in skip_users:
            want.setdefault((d.user_vpa, d.txn_id), set()).add(d.model_dump_json().encode())
    got: dict[tuple[str, str], set[bytes]] = {}
    for raw in tally.decision_bytes:
        doc = orjson.loads(raw)
        key = (str(doc["user_vpa"]), str(doc["txn_id"]))
        if key[0] not in skip_users:
            got.setdefault(key, set()).add(raw)
    told_twice = [k for k, v in got.items() if len(v) > len(want.get(k, ()))]
    assert not told_twice, (
        f"{len(told_twice)} payments have more distinct decisions than the core made "
        "(a replay told another story)"
    )
    differ = [k for k in want if got.get(k) != want[k]]
    assert not differ, f"{len(differ)} payments' decisions differ from the core's"
    alerts = _one_content_per_id(tally.alerts, "alert_id")
    # Grants: one distinct record per grant_id, and (outside the circular farmers)
    # exactly the core's bytes; every grant the core made is there.
    grants = _one_content_per_id(tally.grant_bytes, "grant_id")
    want_grants = {
        g.grant_id: g.model_dump_json().encode()
        for e in sim.effects
        for g in e.grants
        if g.user_vpa not in skip_users
    }
    _as_the_core(want_grants, grants, "grants")
    want_alerts = {
        a.alert_id: a.model_dump_json().encode()
        for e in sim.effects
        for a in e.alerts
        if a.user_vpa not in skip_users
    }
    _as_the_core(want_alerts, alerts, "alerts")
    return {
        "decision_stories_checked": len(want),
        "alert_ids": len(alerts),
        "grant_ids_checked": len(want_grants),
    }


def _positions(
    feed: list[tuple[int, int, bytes | None, bytes | None]], txn_ids: set[str]
) -> list[tuple[int, int]]:
    """Where the feed holds these txn ids: (partition, offset), in order (no ids shown)."""
    found: list[tuple[int, int]] = []
    for partition, offset, _, value in feed:
        try:
            doc = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and doc.get("txn_id") in txn_ids:
            found.append((partition, offset))
    return sorted(found)


def check_pipeline(
    cluster: Cluster,
    report: Report,
    wallet: WalletProcess,
    drain_timeout: float,
    produced: list[bytes | None],
    truth: dict[str, str] | None = None,
    check_changelog: bool = True,
    isolation_level: str = "read_uncommitted",
) -> tuple[Simulation, Tally]:
    """The exactness check shared by the scenarios; fills the report with the figures.

    The replay runs the pure core over ``produced`` in produce order: each
    user's events are keyed by payer, so per user that is the order on the
    topic (checked by ``locate``) and hence the worker's; across users it is
    the order the fraud windows (circular pairs) see in a live run, as in
    tests/integration/test_fraud.py. (Partition-by-partition order would feed a
    pair's two sides hours apart and move a circular flag relative to the
    user's later payments, which changes capped coins: not a crash effect.)

    1. the group has committed every input (``wait_drained``);
    2. every feed message has its dead letter or at least one decision, and
       repeated grant records are exact copies (wallet conflicts = 0);
    3. the wallet's balance per user equals the pure core's replay, exactly.
    """
    drained_in = wait_drained(cluster.bootstrap, drain_timeout, report, isolation_level)
    feed = read_topic(cluster.bootstrap, topics.TRANSACTIONS, expect=len(produced))
    where = locate(produced, feed)
    sim = replay(produced)
    tally = Tally(cluster.bootstrap, isolation_level=isolation_level)
    try:
        tally.read_to_end()  # the group committed everything: every output is there
    finally:
        tally.close()
    summary = wallet.catch_up()
    balances, totals = wallet.read()

    valid = len(feed) - len(sim.dead_letters)
    decided = tally.counts[topics.DECISIONS]
    letters = {(int(str(d["partition"])), int(str(d["offset"]))) for d in tally.letters}
    bad_positions = {where[d.offset] for d in sim.dead_letters}
    grant_records = tally.counts[topics.COIN_GRANTS]
    report.add(
        feed_messages=len(feed),
        dead_letters_expected=len(sim.dead_letters),
        decisions=f"{decided:,} records for {valid:,} valid events ({decided - valid:,} repeated)",
        grant_records=f"{grant_records:,} ({len(tally.grant_ids):,} distinct grant_ids)",
        wallet_applied=totals.applied,
        wallet_duplicates_deduped=totals.duplicates,
        wallet_conflicts=totals.conflicts,
        coins_net=totals.net_coins,
        users_with_balance=len(nonzero(balances)),
        drained_wait_s=round(drained_in, 1),
    )
    assert summary.count("duplicates skipped") == 1, summary
    assert totals.conflicts == 0, "a repeated grant_id carried a different record"
    assert totals.rejected == 0, "the grants topic held a record that is not a CoinGrant"
    assert totals.records == grant_records, "the wallet did not read every grant record"
    assert totals.duplicates == grant_records - len(tally.grant_ids)
    assert letters == bad_positions, (
        f"dead letters: {len(letters - bad_positions)} unexpected, "
        f"{len(bad_positions - letters)} missing"
    )
    want_decided = Counter(
        (e.decision.user_vpa, e.decision.txn_id) for e in sim.effects if e.decision is not None
    )
    got_decided = Counter((str(d["user_vpa"]), str(d["txn_id"])) for d in tally.decisions)
    missing = want_decided - got_decided
    lost = sum(missing.values())
    assert lost == 0 and decided >= valid, (
        f"{lost} valid events have no decision (lost); at feed (partition, offset) "
        f"{_positions(feed, {txn for _, txn in missing})[:30]}"
    )

    def explain(users: list[str]) -> str:
        lines = []
        for n, user in enumerate(users, 1):
            want_g = sorted(
                (g.grant_id, g.kind.value, g.coins, g.reason.value)
                for e in sim.effects
                for g in e.grants
                if g.user_vpa == user
            )
            got_g = sorted(wallet.grants_of(user))
            lines.append(f"user#{n}: only in the wallet {sorted(set(got_g) - set(want_g))}")
            lines.append(f"user#{n}: only in the replay {sorted(set(want_g) - set(got_g))}")
            got_d = [
                (d["txn_id"], d["outcome"], d["coins"])
                for d in tally.decisions
                if d["user_vpa"] == user
            ]
            want_d = [
                (e.decision.txn_id, e.decision.outcome.value, e.decision.coins)
                for e in sim.effects
                if e.decision is not None and e.decision.user_vpa == user
            ]
            lines.append(f"user#{n}: decisions got  {got_d}")
            lines.append(f"user#{n}: decisions want {want_d}")
        return "\n".join(lines)

    compare_balances(balances, sim.balances(), explain)
    circular = {u for u, pattern in (truth or {}).items() if pattern == "circular"}
    report.add(**one_story(sim, tally, circular))
    if check_changelog:
        keys = compare_state(changelog_state(cluster.bootstrap, isolation_level), sim, circular)
        report.add(changelog_keys_checked=keys)
    return sim, tally
