"""``upi-rewards demo``: embedded broker + one worker + synthetic feed, live summary.

Everything runs on loopback in throwaway storage. The summary prints counts
only; the worker's /metrics stays up while the demo runs. The demo makes an
API token (a tokens file in its work dir), prints it and one example ``curl``
of the per-user API for a synthetic user of its feed.
"""

from __future__ import annotations

import argparse
import collections
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import orjson

from brokers.launcher import free_port, make_broker, port_in_use
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tools.feed import FeedStats, produce_feed
from tools.feedgen import generate
from tools.launch import spawn_worker
from tools.processes import shielded, stop_on_signals, stop_process
from tools.topic_io import TopicReader
from topologies import topics
from topologies.admin import ensure_topics

PARTITIONS = 8


@dataclass
class Tally:
    """What the demo has read back from the output topics."""

    decisions: collections.Counter[str] = field(default_factory=collections.Counter)
    dead: collections.Counter[str] = field(default_factory=collections.Counter)
    grants: int = 0
    clawbacks: int = 0
    coins_granted: int = 0
    coins_clawed: int = 0
    fraud_clawed: int = 0
    alerts: collections.Counter[str] = field(default_factory=collections.Counter)
    flagged: set[str] = field(default_factory=set)
    #: One user who was granted coins: the example of the API's curl line.
    example_user: str = ""
    example_at: str = ""
    first_at: float = 0.0
    last_at: float = 0.0
    #: Every decision record's bytes per (user, txn_id), and every dead letter's
    #: source: repeats after a worker re-execution are told apart from new messages.
    decision_bytes: dict[tuple[str, str], collections.Counter[bytes]] = field(default_factory=dict)
    dead_sources: collections.Counter[tuple[str, int, int]] = field(
        default_factory=collections.Counter
    )

    @property
    def accounted(self) -> int:
        """Records read back (repeats included): the progress line's count."""
        return sum(self.decisions.values()) + sum(self.dead.values())

    def rate(self) -> float:
        span = self.last_at - self.first_at
        return self.accounted / span if span > 0 else 0.0


@dataclass(frozen=True)
class Accounting:
    """Messages in against what came out, one message counted once however often its
    outputs were sent (at least once: a re-executed worker repeats exact copies)."""

    sent: int
    decided: int  # valid messages whose decision is on the topic
    dead: int  # messages with a dead letter (distinct sources)
    missing: int  # valid messages with no decision
    repeated: int  # records beyond one per message: copies sent again
    other_stories: int  # (user, txn_id)s with more distinct decisions than messages

    def ok(self, reexecutions: int) -> bool:
        """Every message once; repeats only if the worker re-executed itself."""
        return (
            self.missing == 0
            and self.other_stories == 0
            and (self.repeated == 0 or reexecutions > 0)
            and self.decided + self.dead == self.sent
        )


def expected_decisions(
    count: int, seed: int, fraud_share: float
) -> collections.Counter[tuple[str, str]]:
    """The valid messages per (payer, txn_id) of the demo's feed, validated as the worker does
    (a resend is a second message of its txn_id, with a decision of its own)."""
    want: collections.Counter[tuple[str, str]] = collections.Counter()
    feed = generate(count, seed, fraud_share=fraud_share)
    for offset, message in enumerate(feed):
        txn = decode(message.value, Source(topics.TRANSACTIONS, 0, offset))
        if isinstance(txn, Transaction):
            want[(txn.payer_vpa, txn.txn_id)] += 1
    return want


def account(
    sent: int,
    want: collections.Counter[tuple[str, str]],
    got: dict[tuple[str, str], collections.Counter[bytes]],
    dead_sources: collections.Counter[tuple[str, int, int]],
) -> Accounting:
    """Compare the decisions read back with the messages that should have one each.

    >>> want = collections.Counter({("a@x", "T1"): 1, ("a@x", "T2"): 2})
    >>> got = {("a@x", "T1"): collections.Counter({b"granted": 2}),  # sent twice
    ...        ("a@x", "T2"): collections.Counter({b"granted": 1, b"duplicate": 1})}
    >>> account(4, want, got, collections.Counter({("feed", 0, 3): 1}))
    Accounting(sent=4, decided=3, dead=1, missing=0, repeated=1, other_stories=0)
    """
    decided = missing = repeated = stories = 0
    for key in want.keys() | got.keys():
        n, records = want.get(key, 0), got.get(key, collections.Counter())
        total = sum(records.values())
        decided += min(total, n)
        missing += max(n - total, 0)
        repeated += max(total - n, 0)
        stories += len(records) > n
    repeated += sum(dead_sources.values()) - len(dead_sources)
    return Accounting(sent, decided, len(dead_sources), missing, repeated, stories)


def _watch(bootstrap: str, tally: Tally, stop: threading.Event) -> None:
    names = (topics.DECISIONS, topics.DEAD_LETTERS, topics.COIN_GRANTS, topics.FRAUD_ALERTS)
    with TopicReader([bootstrap], names, unknown=range(PARTITIONS)) as reader:
        while not stop.is_set():
            for tp, records in reader.fetch(timeout_ms=200, max_records=5000).items():
                now = time.monotonic()
                for record in records:
                    doc = orjson.loads(record.value)
                    if tp.topic == topics.DECISIONS:
                        tally.decisions[doc["outcome"]] += 1
                        seen = tally.decision_bytes.setdefault(
                            (doc["user_vpa"], doc["txn_id"]), collections.Counter()
                        )
                        seen[record.value] += 1
                        if not tally.example_user and doc["outcome"] == "GRANTED":
                            tally.example_user = doc["user_vpa"]
                            tally.example_at = doc["event_time"]
                    elif tp.topic == topics.DEAD_LETTERS:
                        tally.dead[doc["reason"]] += 1
                        tally.dead_sources[(doc["topic"], doc["partition"], doc["offset"])] += 1
                    elif tp.topic == topics.FRAUD_ALERTS:
                        tally.alerts[doc["rule"]] += 1
                        tally.flagged.add(doc["user_vpa"])  # kept in memory, never printed
                    elif doc["kind"] == "GRANT":
                        tally.grants += 1
                        tally.coins_granted += doc["coins"]
                    else:
                        tally.clawbacks += 1
                        tally.coins_clawed += doc["coins"]
                        if doc["reason"] == "FRAUD":
                            tally.fraud_clawed += doc["coins"]
                if tp.topic in (topics.DECISIONS, topics.DEAD_LETTERS) and records:
                    tally.first_at = tally.first_at or now
                    tally.last_at = now


def _line(elapsed: float, sent: int, tally: Tally) -> str:
    d = tally.decisions
    return (
        f"[{elapsed:6.1f}s] in {sent:>8,} | decided {sum(d.values()):>8,} "
        f"(granted {d['GRANTED']:,}, no reward {d['NO_REWARD']:,}, clawed back "
        f"{d['CLAWED_BACK']:,}, fraud hold {d['FRAUD_HOLD']:,}, ignored {d['IGNORED']:,}, "
        f"duplicate {d['DUPLICATE']:,}) | fraud alerts {sum(tally.alerts.values()):,} | "
        f"dead letters {sum(tally.dead.values()):,} | coins +{tally.coins_granted:,} "
        f"-{tally.coins_clawed:,} | {tally.rate():,.0f} ev/s"
    )


def _scrape(port: int) -> str:
    """The worker's /metrics page (raises OSError when it cannot be read)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        return str(resp.read().decode())


def _metrics_excerpt(port: int) -> list[str]:
    try:
        text = _scrape(port)
    except OSError as exc:
        return [f"(metrics not reachable: {exc})"]
    return [
        line
        for line in text.splitlines()
        if line.startswith(("rewards_events_total", "rewards_coins_total"))
        or (line.startswith("rewards_fraud_alerts_total") and not line.endswith(" 0.0"))
        or (line.startswith("rewards_dead_letters_total") and not line.endswith(" 0.0"))
        or line.startswith("rewards_event_latency_seconds_count")
    ]


def _reexecutions(port: int) -> int:
    """``rewards_worker_reexecutions`` of the worker (0 when it cannot be read)."""
    try:
        text = _scrape(port)
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("rewards_worker_reexecutions "):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def _total_lag(port: int) -> int | None:
    """Sum of ``rewards_consumer_lag_messages`` over every input partition (None: unknown)."""
    try:
        text = _scrape(port)
    except OSError:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rewards_consumer_lag_messages{")
    ]
    return int(sum(values)) if values else None


def _wait_drained(port: int, timeout_s: float) -> bool:
    """True once the worker's lag is 0 on every input on two scrapes 1 s apart."""
    deadline = time.monotonic() + timeout_s
    zero_in_a_row = 0
    while time.monotonic() < deadline:
        zero_in_a_row = zero_in_a_row + 1 if _total_lag(port) == 0 else 0
        if zero_in_a_row >= 2:
            return True
        time.sleep(1.0)
    return False


def run_demo(args: argparse.Namespace) -> int:
    stop_on_signals()  # SIGTERM, SIGINT, SIGHUP: like Ctrl-C, the finally stops the children
    workdir = Path(tempfile.mkdtemp(prefix="upi-rewards-demo-"))
    port = args.port or (9092 if not port_in_use("127.0.0.1", 9092) else free_port())
    if port_in_use("127.0.0.1", args.web_port):
        print(f"error: web port {args.web_port} is in use; pass --web-port", file=sys.stderr)
        return 2
    broker = make_broker(getattr(args, "engine", "tansu"), port=port, log=workdir / "broker.log")
    worker: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    watcher: threading.Thread | None = None
    started = time.monotonic()
    token = secrets.token_urlsafe(24)
    tokens_file = workdir / "api-tokens"
    tokens_file.write_text(f"# made by upi-rewards demo\n{token}\n")
    tokens_file.chmod(0o600)
    try:
        broker.start()
        print(f"broker  : {broker.description} on {broker.bootstrap}")
        ensure_topics(
            [broker.bootstrap],
            {topics.TRANSACTIONS: PARTITIONS, **{name: PARTITIONS for name in topics.OUTPUTS}},
        )
        env = {
            "REWARDS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "REWARDS_RULES_FILE": str(args.rules),
            "REWARDS_WEB_PORT": str(args.web_port),
            "REWARDS_DATA_DIR": str(workdir / "state"),
            "REWARDS_PARTITIONS": str(PARTITIONS),
            "REWARDS_API_TOKENS_FILE": str(tokens_file),
        }
        worker = spawn_worker(workdir / "worker.log", env=env)
        print(f"worker  : pid {worker.pid}, metrics on http://127.0.0.1:{args.web_port}/metrics")
        print(f"logs    : {workdir}")
        tally = Tally()
        watcher = threading.Thread(target=_watch, args=(broker.bootstrap, tally, stop), daemon=True)
        watcher.start()
        feed_result: list[FeedStats] = []
        truth: dict[str, str] = {}
        feed_error: list[BaseException] = []

        def feed() -> None:
            try:
                feed_result.append(
                    produce_feed(
                        [broker.bootstrap],
                        args.count,
                        seed=args.seed,
                        rate=args.rate,
                        fraud_share=args.fraud_share,
                        truth=truth,
                    )
                )
            except Exception as exc:  # reported by the main loop
                feed_error.append(exc)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        print(
            f"feed    : {args.count:,} synthetic UPI events (seed {args.seed}, "
            f"{args.fraud_share:.0%} of users farming rewards)"
        )
        next_print = time.monotonic()
        while tally.accounted < args.count:
            if feed_error:
                print(f"error: the feed failed: {feed_error[0]!r}")
                return 1
            if worker.poll() is not None:
                print(f"error: worker exited with code {worker.returncode}; see {workdir}")
                return 1
            if time.monotonic() - started > args.timeout:
                print(f"error: timed out after {args.timeout:.0f}s; see {workdir}")
                return 1
            if time.monotonic() >= next_print:
                sent = feed_result[0].sent if feed_result else 0
                print(_line(time.monotonic() - started, sent or args.count, tally), flush=True)
                next_print += 1.0
            time.sleep(0.1)
        feeder.join()
        # Every feed message is decided, but circular flags still travel a
        # second hop (payments-by-pair -> txns-by-payer): wait until the worker
        # reports no lag on any of its inputs, so late alerts are counted.
        drained = _wait_drained(args.web_port, timeout_s=60)
        time.sleep(0.5)
        stats = feed_result[0]
        print(_line(time.monotonic() - started, stats.sent, tally))
        reexecuted = _reexecutions(args.web_port)
        books = account(
            stats.sent,
            expected_decisions(args.count, args.seed, args.fraud_share),
            tally.decision_bytes,
            tally.dead_sources,
        )
        ok = books.ok(reexecuted)
        records = "" if not books.repeated else " records"
        print()
        print(f"messages in       : {stats.sent:,} ({stats.bad:,} generated bad)")
        print(
            f"decisions         : {sum(tally.decisions.values()):,}{records}  "
            f"{dict(sorted(tally.decisions.items()))}"
        )
        print(
            f"dead letters      : {sum(tally.dead.values()):,}{records}  "
            f"{dict(sorted(tally.dead.items()))}"
        )
        print(
            f"grants / clawbacks: {tally.grants:,} / {tally.clawbacks:,} "
            f"({tally.coins_granted:,} coins granted, {tally.coins_clawed:,} clawed back)"
        )
        farmers, flagged = set(truth), tally.flagged
        held = tally.decisions["FRAUD_HOLD"]
        print(
            f"fraud             : {sum(tally.alerts.values()):,} alerts "
            f"{dict(sorted(tally.alerts.items()))}, {held:,} payments held, "
            f"{tally.fraud_clawed:,} coins clawed back; farmers flagged "
            f"{len(farmers & flagged)}/{len(farmers)}, "
            f"honest users flagged {len(flagged - farmers)}"
            + ("" if drained else " (worker lag not yet 0 after 60 s: alerts may be missing)")
        )
        print(
            f"accounted for     : {'yes' if ok else 'NO'} "
            f"(in {stats.sent:,} = decisions {books.decided:,} + dead letters {books.dead:,})"
            + (f"; {books.missing:,} valid messages have no decision" if books.missing else "")
            + (
                f"; {books.other_stories:,} payments with more distinct decisions than messages"
                if books.other_stories
                else ""
            )
        )
        if books.repeated or reexecuted:
            print(
                f"repeats           : {books.repeated:,} records sent again as exact copies, "
                f"counted once; the worker re-executed itself {reexecuted} time(s) after a "
                f"fail-stop (see {workdir / 'worker.log'}): at least once, docs/contracts.md"
            )
        print(
            f"throughput        : {tally.rate():,.0f} events/s end to end "
            f"(first to last output, one worker process)"
        )
        print("metrics           :")
        for line in _metrics_excerpt(args.web_port):
            print(f"  {line}")
        user = tally.example_user or "ravi.kumar@okaxis"
        at = f"?at={quote(tally.example_at, safe='')}" if tally.example_at else ""
        print(f"api token         : {token}  (in {tokens_file})")
        print(
            "api example       : curl -H 'Authorization: Bearer "
            f"{token}' 'http://127.0.0.1:{args.web_port}/v1/users/{user}/rewards{at}'"
            + ("" if args.keep_running else "   (with --keep-running)")
        )
        if args.keep_running:
            print("running; Ctrl-C stops broker and worker")
            signal.pause()
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\nstopping...")
        return 130
    finally:
        with shielded():
            stop.set()
            # A signal can land inside watcher.start(): then it never started
            # and join() would raise before the children below were stopped.
            if watcher is not None and watcher.is_alive():
                watcher.join(timeout=5)
            if worker is not None:
                stop_process(worker)
            broker.stop()
            shutil.rmtree(workdir / "state", ignore_errors=True)
            print(f"stopped broker and worker in {time.monotonic() - started:.1f}s total")
