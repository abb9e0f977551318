"""The wallet side of the contract, as a reference: apply each ``grant_id`` at most once.

Pure (SQLite only, no Kafka): ``tools.wallet`` feeds it records read from
``rewards.coin-grants``. The pipeline is at-least-once (a crash repeats outputs,
with the same ids; docs/contracts.md), so the wallet must dedupe. Here the
ledger table has ``grant_id`` as its PRIMARY KEY, and the records of one poll
plus the consumer positions they advance to are written in **one SQLite
transaction**: a wallet crash either keeps both or neither, so the wallet can
be killed at any moment and resumes without losing or doubling a coin.

A repeated ``grant_id`` is counted (``duplicates``); a repeat that differs from
the stored record (a broken producer: the contract says repeats are exact
copies) is counted separately (``conflicts``) and not applied either. A record
that is not a valid CoinGrant is counted as ``rejected`` and skipped, so one bad
record cannot wedge the wallet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.grant import CoinGrant, GrantKind

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger (
    grant_id   TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('GRANT', 'CLAWBACK')),
    user_vpa   TEXT NOT NULL,
    coins      INTEGER NOT NULL CHECK (coins > 0),
    txn_id     TEXT NOT NULL,
    reason     TEXT NOT NULL,
    record     BLOB NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    "offset"   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ledger_user ON ledger (user_vpa);
CREATE TABLE IF NOT EXISTS positions (
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

COUNTERS = ("records", "applied", "duplicates", "conflicts", "rejected")


@dataclass(frozen=True, slots=True)
class Record:
    """One record read from the grants topic, with where it was."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Totals:
    records: int
    applied: int
    duplicates: int
    conflicts: int
    rejected: int
    users: int
    grants: int
    clawbacks: int
    coins_granted: int
    coins_clawed_back: int

    @property
    def net_coins(self) -> int:
        return self.coins_granted - self.coins_clawed_back


class WalletLedger:
    """A SQLite ledger keyed by ``grant_id``; ``apply`` is idempotent per id."""

    def __init__(self, path: Path | str) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None)  # we BEGIN/COMMIT ourselves
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(SCHEMA)
        self.conn.executemany(
            "INSERT OR IGNORE INTO counters (name, value) VALUES (?, 0)", [(n,) for n in COUNTERS]
        )

    def close(self) -> None:
        self.conn.close()

    def positions(self, topic: str) -> dict[int, int]:
        """Next offset to read per partition, as committed with the rows."""
        rows = self.conn.execute(
            "SELECT partition, next_offset FROM positions WHERE topic = ?", (topic,)
        )
        return {int(p): int(o) for p, o in rows}

    def apply(self, records: Iterable[Record]) -> dict[str, int]:
        """Apply one poll's records and advance the positions, atomically.

        Returns this call's counts (records, applied, duplicates, conflicts, rejected).
        """
        counts = dict.fromkeys(COUNTERS, 0)
        ends: dict[tuple[str, int], int] = {}
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for record in records:
                counts["records"] += 1
                key = (record.topic, record.partition)
                ends[key] = max(ends.get(key, 0), record.offset + 1)
                try:
                    grant = CoinGrant.model_validate_json(record.value or b"")
                except ValidationError:
                    counts["rejected"] += 1
                    continue
                canonical = grant.model_dump_json().encode()
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO ledger (grant_id, kind, user_vpa, coins, txn_id,"
                    ' reason, record, topic, partition, "offset")'
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        grant.grant_id,
                        grant.kind.value,
                        grant.user_vpa,
                        grant.coins,
                        grant.txn_id,
                        grant.reason.value,
                        canonical,
                        record.topic,
                        record.partition,
                        record.offset,
                    ),
                )
                if cursor.rowcount == 1:
                    counts["applied"] += 1
                    continue
                (stored,) = conn.execute(
                    "SELECT record FROM ledger WHERE grant_id = ?", (grant.grant_id,)
                ).fetchone()
                counts["duplicates" if bytes(stored) == canonical else "conflicts"] += 1
            for (topic, partition), end in ends.items():
                conn.execute(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)"
                    " ON CONFLICT (topic, partition) DO UPDATE SET"
                    " next_offset = max(next_offset, excluded.next_offset)",
                    (topic, partition, end),
                )
            conn.executemany(
                "UPDATE counters SET value = value + ? WHERE name = ?",
                [(n, name) for name, n in counts.items() if n],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return counts

    def balances(self) -> dict[str, int]:
        """Per user: sum of GRANT coins minus sum of CLAWBACK coins (may be negative)."""
        rows = self.conn.execute(
            "SELECT user_vpa, SUM(CASE kind WHEN ? THEN coins ELSE -coins END)"
            " FROM ledger GROUP BY user_vpa",
            (GrantKind.GRANT.value,),
        )
        return {str(user): int(total) for user, total in rows}

    def totals(self) -> Totals:
        counters = dict(self.conn.execute("SELECT name, value FROM counters").fetchall())
        users, grants, clawbacks, granted, clawed = self.conn.execute(
            "SELECT COUNT(DISTINCT user_vpa),"
            " COALESCE(SUM(kind = 'GRANT'), 0), COALESCE(SUM(kind = 'CLAWBACK'), 0),"
            " COALESCE(SUM(CASE kind WHEN 'GRANT' THEN coins END), 0),"
            " COALESCE(SUM(CASE kind WHEN 'CLAWBACK' THEN coins END), 0) FROM ledger"
        ).fetchone()
        return Totals(
            int(counters["records"]),
            int(counters["applied"]),
            int(counters["duplicates"]),
            int(counters["conflicts"]),
            int(counters["rejected"]),
            int(users),
            int(grants),
            int(clawbacks),
            int(granted),
            int(clawed),
        )
