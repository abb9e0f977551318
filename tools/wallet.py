"""``upi-rewards wallet``: a reference wallet consumer of ``rewards.coin-grants``.

It reads every partition with ``assign()`` and no consumer group, and keeps
its positions in the SQLite file next to the ledger rows, written in the same
transaction (``tools.wallet_ledger``). So a kill -9 of the wallet at any moment is
harmless: on restart it resumes exactly where its last committed rows end. No
group also means no join round (Tansu makes a new group's first join wait out
the rebalance timeout) and nothing to clean up on the broker.

Logs and the summary print counts only. VPAs leave the process only through
``--balances FILE``, an explicit dump for reconciliation.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from tools.wallet_ledger import Record, Totals, WalletLedger
from topologies import topics
from topologies.security import kafka_python_options


@dataclass(frozen=True, slots=True)
class WalletRun:
    totals: Totals
    seconds: float
    polls: int


def _partitions(consumer: KafkaConsumer, topic: str, timeout_s: float) -> list[TopicPartition]:
    """Wait for the topic's metadata: the wallet may start before any worker created it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} not found within {timeout_s:.0f}s")
        time.sleep(0.5)
        consumer.topics()  # refresh metadata


def run_wallet(
    bootstrap: list[str],
    db: Path,
    until_idle_s: float | None = None,
    topic: str = topics.COIN_GRANTS,
    max_records: int = 5000,
    topic_timeout_s: float = 60.0,
    read_committed: bool = False,
) -> WalletRun:
    """Consume and apply until stopped (KeyboardInterrupt) or idle for ``until_idle_s``.

    ``read_committed``: skip the records of aborted transactions (a pipeline
    running ``exactly_once``)."""
    ledger = WalletLedger(db)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=30_000,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        **kafka_python_options(),
    )
    started = time.monotonic()
    polls = 0
    try:
        tps = _partitions(consumer, topic, topic_timeout_s)
        consumer.assign(tps)
        stored = ledger.positions(topic)
        for tp in tps:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
            else:
                consumer.seek_to_beginning(tp)
        last_data = time.monotonic()
        while until_idle_s is None or time.monotonic() - last_data < until_idle_s:
            batch = consumer.poll(timeout_ms=500, max_records=max_records)
            polls += 1
            records = [
                Record(tp.topic, tp.partition, r.offset, r.value)
                for tp, rs in batch.items()
                for r in rs
            ]
            if records:
                ledger.apply(records)
                last_data = time.monotonic()
        return WalletRun(ledger.totals(), time.monotonic() - started, polls)
    finally:
        consumer.close()
        ledger.close()


def dump_balances(db: Path, out: Path) -> int:
    """Write ``{user_vpa: balance}`` as JSON to ``out``; returns the number of users."""
    ledger = WalletLedger(db)
    try:
        balances = ledger.balances()
    finally:
        ledger.close()
    out.write_text(json.dumps(balances, indent=1, sort_keys=True) + "\n")
    return len(balances)


def summary_lines(totals: Totals) -> list[str]:
    """Counts only: no VPA, no txn id."""
    return [
        f"records read      : {totals.records:,}",
        f"applied           : {totals.applied:,} "
        f"({totals.grants:,} grants, {totals.clawbacks:,} clawbacks, {totals.users:,} users)",
        f"duplicates skipped: {totals.duplicates:,} (same grant_id, identical record)",
        f"conflicts         : {totals.conflicts:,} (same grant_id, different record: not applied)",
        f"rejected          : {totals.rejected:,} (not a valid CoinGrant)",
        f"coins             : +{totals.coins_granted:,} -{totals.coins_clawed_back:,} "
        f"= {totals.net_coins:,} net",
    ]
