"""The reference wallet's ledger: each grant_id applied at most once, offsets with rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tools.wallet_ledger import Record, WalletLedger

TOPIC = "rewards.coin-grants"


def grant(grant_id: str, user: str, coins: int, kind: str = "GRANT") -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "grant_id": grant_id,
            "kind": kind,
            "user_vpa": user,
            "coins": coins,
            "txn_id": grant_id.split(":")[0],
            "cause_txn_id": grant_id.split(":")[0],
            "reason": "PAYMENT" if kind == "GRANT" else "REFUND",
            "rules_version": "v1",
            "rules": [{"rule_id": "r", "coins": coins}] if kind == "GRANT" else [],
            "event_time": "2026-11-22T12:00:00+05:30",
        }
    ).encode()


def rec(offset: int, value: bytes | None, partition: int = 0) -> Record:
    return Record(TOPIC, partition, offset, value)


@pytest.fixture
def ledger(tmp_path: Path):
    w = WalletLedger(tmp_path / "wallet.db")
    yield w
    w.close()


def test_a_repeated_grant_id_is_applied_once_and_counted(ledger: WalletLedger):
    g1, g2 = grant("P1:grant", "asha@okaxis", 18), grant("P2:grant", "asha@okaxis", 5)
    claw = grant("R1:clawback", "asha@okaxis", 6, "CLAWBACK")
    counts = ledger.apply([rec(0, g1), rec(1, g2), rec(2, claw), rec(3, g1), rec(4, claw)])
    assert counts == {"records": 5, "applied": 3, "duplicates": 2, "conflicts": 0, "rejected": 0}
    assert ledger.balances() == {"asha@okaxis": 18 + 5 - 6}
    t = ledger.totals()
    assert (t.duplicates, t.grants, t.clawbacks, t.coins_granted, t.coins_clawed_back) == (
        2,
        2,
        1,
        23,
        6,
    )


def test_a_repeat_that_differs_is_a_conflict_and_not_applied(ledger: WalletLedger):
    ledger.apply([rec(0, grant("P1:grant", "asha@okaxis", 18))])
    counts = ledger.apply([rec(1, grant("P1:grant", "asha@okaxis", 99))])
    assert counts["conflicts"] == 1 and counts["applied"] == 0
    assert ledger.balances() == {"asha@okaxis": 18}


def test_garbage_is_rejected_and_skipped_but_its_offset_is_consumed(ledger: WalletLedger):
    counts = ledger.apply(
        [rec(0, b"{not json"), rec(1, None), rec(2, grant("P1:grant", "aa@okaxis", 3))]
    )
    assert counts["rejected"] == 2 and counts["applied"] == 1
    assert ledger.positions(TOPIC) == {0: 3}


def test_positions_advance_with_the_rows_and_never_go_back(ledger: WalletLedger):
    ledger.apply(
        [rec(0, grant("A:grant", "aa@okaxis", 1)), rec(7, grant("B:grant", "bb@okaxis", 2), 3)]
    )
    assert ledger.positions(TOPIC) == {0: 1, 3: 8}
    ledger.apply([rec(0, grant("A:grant", "aa@okaxis", 1))])  # a re-read from an older position
    assert ledger.positions(TOPIC) == {0: 1, 3: 8}


def test_a_failed_apply_keeps_neither_rows_nor_positions(ledger: WalletLedger):
    class Boom(Exception):
        pass

    def records() -> Iterator[Record]:
        yield rec(0, grant("A:grant", "aa@okaxis", 1))
        raise Boom  # the process dies mid-poll

    with pytest.raises(Boom):
        ledger.apply(records())
    assert ledger.balances() == {} and ledger.positions(TOPIC) == {}
    assert ledger.totals().records == 0


def test_state_survives_reopening_the_file(tmp_path: Path):
    first = WalletLedger(tmp_path / "w.db")
    first.apply([rec(0, grant("A:grant", "aa@okaxis", 4))])
    first.close()
    again = WalletLedger(tmp_path / "w.db")
    try:
        assert again.apply([rec(0, grant("A:grant", "aa@okaxis", 4))])["duplicates"] == 1
        assert again.balances() == {"aa@okaxis": 4} and again.positions(TOPIC) == {0: 1}
    finally:
        again.close()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 9), st.sampled_from(["GRANT", "CLAWBACK"]), st.integers(1, 50)),
        max_size=30,
    ),
    st.lists(st.integers(0, 29), max_size=30),
)
def test_any_replay_pattern_gives_the_balance_of_the_distinct_ids(tmp_path_factory, base, repeats):
    """Whatever gets repeated, and in whatever order, the balance is that of distinct ids."""
    items = [(f"T{i}:{k.lower()}", k, c) for i, k, c in base]
    first: dict[str, tuple[str, int]] = {}
    for gid, kind, coins in items:
        first.setdefault(gid, (kind, coins))
    stream = items + [items[i] for i in repeats if i < len(items)]
    ledger = WalletLedger(tmp_path_factory.mktemp("w") / "w.db")
    try:
        values = [grant(g, "uu@okaxis", c, k) for g, k, c in stream]
        ledger.apply(rec(n, v) for n, v in enumerate(values))
        want = sum(c if k == "GRANT" else -c for k, c in first.values())
        assert ledger.balances().get("uu@okaxis", 0) == want
        t = ledger.totals()
        assert t.applied == len(first)
        assert t.applied + t.duplicates + t.conflicts == len(stream)
    finally:
        ledger.close()
