"""``upi-rewards simulate`` on a hand-made feed: every number of the summary, by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import yaml

from rewards.backtest import SUMMARY_KEYS, run, summary_of_outputs
from rewards.rulebook import parse_rules
from tests.unit.helpers import raw
from tools.backtest_cli import Progress, read_lines
from tools.cli import main

A, B = "ravi.kumar@okaxis", "priya.sharma@ybl"
FRIEND = "amit.verma@oksbi"

RULES: dict[str, Any] = {
    "version": "hand-1",
    "timezone": "Asia/Kolkata",
    "limits": {"daily_coins_per_user": 30},
    "rules": [
        {"id": "base", "match": {"payee_kind": "MERCHANT"}, "reward": {"bps": 100}},
        {
            "id": "p2p",
            "match": {"payee_kind": "PERSON", "min_amount_paise": 10_000},
            "reward": {"flat_coins": 1},
        },
    ],
    "fraud": {"velocity": {"max_payments": 2, "window_seconds": 600}, "cooldown_seconds": 3600},
}


def person(txn_id: str, payer: str, at: str) -> bytes:
    return raw(
        txn_id=txn_id,
        payer_vpa=payer,
        payee_vpa=FRIEND,
        payee_kind="PERSON",
        mcc=...,
        amount_paise=20_000,
        event_time=f"2026-11-25T{at}:00+05:30",
    )


FEED = [
    raw(txn_id="A1", payer_vpa=A, amount_paise=100_000),  # 10 coins (base), 10:00
    raw(txn_id="A2", payer_vpa=A, amount_paise=2_000_000, event_time="2026-11-25T10:05:00+05:30"),
    b"not json",  # a dead letter
    person("B1", B, "09:00"),  # 1 coin (p2p)
    raw(
        txn_id="R1",
        payer_vpa=A,
        kind="REFUND",
        original_txn_id="A1",
        amount_paise=100_000,
        event_time="2026-11-25T10:30:00+05:30",
    ),  # claws back A1's 10
    raw(txn_id="A3", payer_vpa=A, amount_paise=50_000, event_time="2026-11-25T11:00:00+05:30"),
    raw(txn_id="B0", payer_vpa=B, status="PENDING"),  # IGNORED
    b"{}",  # a dead letter
    person("B2", B, "12:00"),  # 1 coin
    person("B3", B, "12:01"),  # 1 coin
    person("B4", B, "12:02"),  # third in 10 minutes: velocity; B2, B3 clawed back, B4 held
]

WANT: dict[str, Any] = {
    "events": 9,
    "dead_letters": 2,
    "coins_granted": 10 + 20 + 1 + 1 + 1,  # A2 is cut to the 20 left of the day's 30
    "coins_clawed_back": 10 + 2,
    "grants": 5,
    "by_rule": {"base": 30, "p2p": 3},
    "users_capped_daily": 1,  # A: A2 cut, A3 nothing left (a refund gives no cap room back)
    "users_capped_monthly": 0,
    "fraud_holds": 1,
}


def test_the_summary_of_a_hand_made_feed():
    result = run(FEED, parse_rules(RULES))
    assert result.summary == WANT
    assert tuple(result.summary) == SUMMARY_KEYS


def test_the_summary_equals_the_one_made_from_the_pipelines_output_records():
    result = run(FEED, parse_rules(RULES))
    decisions = [
        orjson.loads(e.decision.model_dump_json()) for e in result.sim.effects if e.decision
    ]
    grants = [orjson.loads(g.model_dump_json()) for e in result.sim.effects for g in e.grants]
    assert summary_of_outputs(decisions, grants, len(result.sim.dead_letters)) == WANT


def test_the_cli_writes_the_summary_with_and_without_a_baseline(tmp_path: Path, capsys):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(FEED) + b"\n")
    rules = tmp_path / "hand.yaml"
    rules.write_text(yaml.safe_dump(RULES))
    richer = tmp_path / "richer.yaml"
    richer.write_text(
        yaml.safe_dump({**RULES, "version": "hand-2", "limits": {"daily_coins_per_user": 1000}})
    )
    out = tmp_path / "summary.json"
    assert (
        main(["simulate", "--rules", str(rules), "--input", str(feed), "--summary-json", str(out)])
        == 0
    )
    assert json.loads(out.read_text()) == {**WANT, "baseline": None}
    printed = capsys.readouterr()
    assert "coins_granted" in printed.out and "[#" not in printed.err  # not a terminal: no bar

    args = ["simulate", "--rules", str(richer), "--baseline", str(rules), "--input", str(feed)]
    assert main([*args, "--summary-json", str(out)]) == 0
    both = json.loads(out.read_text())
    assert both["baseline"] == WANT
    # Without the cap A2 earns all its 200 coins, and A3 its 5.
    assert both["coins_granted"] == WANT["coins_granted"] + 180 + 5
    assert both["users_capped_daily"] == 0


def test_a_bad_rules_file_is_exit_2_naming_the_field(tmp_path: Path, capsys):
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(FEED[0] + b"\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**RULES, "limits": {"daily_coin": 3}}))
    assert main(["simulate", "--rules", str(bad), "--input", str(feed)]) == 2
    assert "limits.daily_coin" in capsys.readouterr().err


def test_lines_are_messages_without_their_line_breaks(tmp_path: Path):
    path = tmp_path / "f"
    path.write_bytes(b'{"a":1}\r\n\nxyz\n')
    assert read_lines(path) == [b'{"a":1}', b"", b"xyz"]


def test_the_progress_bar_counts_to_the_end():
    stream = io.StringIO()
    items = list(Progress(10, "new", stream, every=3).wrap([b"x"] * 10))
    assert len(items) == 10
    drawn = stream.getvalue()
    assert drawn.count("\r") == 4 and "100%" in drawn and "10/10" in drawn
    assert drawn.endswith("\n")
    exact = io.StringIO()
    list(Progress(10, "new", exact, every=5).wrap([b"x"] * 10))
    assert exact.getvalue().count("\r") == 2  # the end is drawn once
