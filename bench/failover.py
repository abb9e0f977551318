"""How long a SIGKILLed worker's partitions take to reach the survivor.

``python -m bench.failover [--engine kafka|tansu] [--runs 3]``: two workers in
one group on a fresh broker, both holding input partitions; SIGKILL one
(no LeaveGroup: the broker only learns from the missing heartbeats) and time
until the survivor holds every partition of the input topic, then until it
is ready again (no rebalance, tables recovered) and until a record produced
after the kill has been decided. The workers' session timeout is the
default ``REWARDS_SESSION_TIMEOUT_S`` (10 s) unless set.

Found with it on Apache Kafka 4.1.1 (2026-12-01): when the killed worker had
never committed on a partition (records arrive only after the kill), the
survivor sometimes holds the partition, reports ready, and never reads it:
committed None, end 52, nothing consumed for 90 s (2 runs in 5). The run then
fails and prints the group's positions; its logs stay in the temp dir.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path

from brokers.launcher import ENGINES, engine_from_env, free_port, make_broker
from tests.integration.conftest import PARTITIONS, WorkerFactory
from tools.topic_io import TopicTail, producer
from topologies import topics
from topologies.admin import ensure_topics

ASSIGNED = re.compile(
    r'^rewards_assigned_partitions\{topic="' + re.escape(topics.TRANSACTIONS) + r'"\} (\S+)$', re.M
)
READY = re.compile(r"^rewards_worker_ready (\S+)$", re.M)


def _gauge(text: str, pattern: re.Pattern[str]) -> float:
    m = pattern.search(text)
    return float(m.group(1)) if m else 0.0


def _metrics(worker) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(worker.metrics())
    except OSError:
        return ""


def _positions(bootstrap: str) -> str:
    """The group's committed offset against the end offset, per stream partition."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=[bootstrap])
    committed = admin.list_group_offsets({"upi-rewards": None})["upi-rewards"]
    admin.close()
    cons = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None)
    tps = [
        TopicPartition(t, p)
        for t in (topics.TRANSACTIONS, "upi-rewards.txns-by-payer", "upi-rewards.payments-by-pair")
        for p in range(PARTITIONS)
    ]
    ends = cons.end_offsets(tps)
    cons.close()
    return "\n".join(
        f"{tp.topic}[{tp.partition}] committed "
        f"{committed[tp].offset if tp in committed else None} end {ends[tp]}"
        for tp in tps
    )


def one_run(engine: str, tmp: Path, sig: int = signal.SIGKILL) -> dict[str, float]:
    with make_broker(engine, port=free_port(), log=tmp / "broker.log") as broker:
        ensure_topics(
            [broker.bootstrap],
            {topics.TRANSACTIONS: PARTITIONS, **{t: PARTITIONS for t in topics.OUTPUTS}},
        )
        factory = WorkerFactory(broker, tmp)
        try:
            a, b = factory.start(), factory.start()
            deadline = time.monotonic() + 120
            while True:
                na, nb = (_gauge(_metrics(w), ASSIGNED) for w in (a, b))
                split = na > 0 and nb > 0 and na + nb == PARTITIONS
                if split and all(_gauge(_metrics(w), READY) == 1 for w in (a, b)):
                    break
                assert time.monotonic() < deadline, f"no split assignment: {na}, {nb}"
                time.sleep(0.2)
            killed = time.monotonic()
            a.proc.send_signal(sig)
            a.proc.wait()
            # One record per partition, produced right after the kill.
            prod = producer([broker.bootstrap])
            from tools.feedgen import generate

            sent = 0
            for m in generate(200, seed=5):
                prod.send(topics.TRANSACTIONS, key=m.key, value=m.value)
                sent += 1
            prod.flush()
            moved = ready = decided = 0.0
            tail = TopicTail([broker.bootstrap], [topics.DECISIONS, topics.DEAD_LETTERS])
            try:
                while not (moved and ready and decided):
                    now = time.monotonic() - killed
                    text = _metrics(b)
                    have = tail.count(topics.DECISIONS) + tail.count(topics.DEAD_LETTERS)
                    if now >= 90:
                        print(_positions(broker.bootstrap), flush=True)
                    assert now < 90, (
                        f"no failover after {now:.0f}s: moved {moved} ready {ready} "
                        f"outputs {have}/{sent}\n"
                        + "\n".join(x for x in text.splitlines() if "assigned" in x or "ready" in x)
                    )
                    if not moved and _gauge(text, ASSIGNED) == PARTITIONS:
                        moved = now
                    if moved and not ready and _gauge(text, READY) == 1:
                        ready = now
                    tail.poll()
                    if (
                        not decided
                        and tail.count(topics.DECISIONS) + tail.count(topics.DEAD_LETTERS) >= sent
                    ):
                        decided = time.monotonic() - killed
                    time.sleep(0.1)
            finally:
                tail.close()
            return {
                "moved_s": round(moved, 2),
                "ready_s": round(ready, 2),
                "all_decided_s": round(decided, 2),
            }
        finally:
            factory.stop_all()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    p.add_argument("--engine", choices=ENGINES, default=engine_from_env())
    p.add_argument("--runs", type=int, default=3)
    p.add_argument(
        "--signal", choices=["KILL", "TERM"], default="KILL", help="TERM: a graceful leave"
    )
    args = p.parse_args()
    for i in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="failover-"))
        result = one_run(args.engine, tmp, getattr(signal, "SIG" + args.signal))
        print(f"{args.engine} run {i + 1}: {result}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)  # kept (logs) when the run fails
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
