"""The formatting lines of docs/contracts.md, each held by a test.

Reason precedence (a missing field before an invalid one), the ``TOO_LARGE``
raw cut at 4 KiB (base64 when the cut splits a multi-byte character), the
``event_time`` rendering on every output (6 fraction digits kept, a zero
fraction dropped, ``Z`` as ``+00:00``, the offset kept), the clawbacks'
``event_time``, and real fraud alerts against their JSON Schema.
"""

from __future__ import annotations

import base64
import json

import orjson
import pytest

from rewards.ledger import replay
from rewards.validate import MAX_MESSAGE_BYTES, TRUNCATE_RAW_BYTES, Source, decode
from schemas.dead_letter import DeadLetter
from tests.unit.helpers import book, decided, raw, refund, txn
from tests.unit.test_schema_export import _validates

SRC = Source("upi.transactions", 1, 5)


def letter(value: bytes) -> DeadLetter:
    out = decode(value, SRC)
    assert isinstance(out, DeadLetter), out
    return out


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # every invalid field comes before the missing one in the document
        ({"txn_id": "a/b", "amount_paise": "100", "currency": ...}, "currency"),
        ({"txn_id": 12, "kind": ...}, "kind"),
        ({"amount_paise": -1, "event_time": ...}, "event_time"),
        # the cross-field "missing" (mcc on a MERCHANT) still beats an invalid field
        ({"amount_paise": 0, "mcc": ...}, "mcc"),
    ],
)
def test_a_missing_field_is_reported_before_an_invalid_one(changes, field):
    out = letter(raw(**changes))
    assert (out.reason, out.field) == ("MISSING_FIELD", field)


def test_only_invalid_fields_report_the_first_found():
    out = letter(raw(txn_id="a/b", amount_paise="100"))
    assert (out.reason, out.field) == ("INVALID_FIELD", "txn_id")


def _oversized(prefix_len: int) -> bytes:
    """A too-large message whose byte 4,096 falls ``prefix_len`` bytes into a '€' (3 bytes)."""
    head = b'{"pad": "' + b"x" * (TRUNCATE_RAW_BYTES - 9 - prefix_len)
    assert len(head) + prefix_len == TRUNCATE_RAW_BYTES
    body = head + "€".encode() * 5000 + b'"}'
    assert len(body) > MAX_MESSAGE_BYTES
    return body


@pytest.mark.parametrize("into", [1, 2])
def test_too_large_raw_is_base64_when_the_4_kib_cut_splits_a_character(into):
    value = _oversized(into)
    out = letter(value)
    assert (out.reason, out.raw_truncated, out.raw_size) == ("TOO_LARGE", True, len(value))
    assert out.raw_encoding == "base64"
    assert base64.b64decode(out.raw) == value[:TRUNCATE_RAW_BYTES]


def test_too_large_raw_stays_text_when_the_cut_falls_between_characters():
    value = _oversized(0)
    out = letter(value)
    assert (out.reason, out.raw_encoding, out.raw_truncated) == ("TOO_LARGE", "utf-8", True)
    assert out.raw.encode() == value[:TRUNCATE_RAW_BYTES]
    # A non-truncated dead letter with multi-byte text keeps it as text.
    small = letter(raw(currency="₹"))
    assert (small.raw_encoding, small.raw_truncated) == ("utf-8", False)
    assert small.raw.encode() == raw(currency="₹")


@pytest.mark.parametrize(
    ("given", "rendered"),
    [
        ("2026-11-25T10:00:00.123456789+05:30", "2026-11-25T10:00:00.123456+05:30"),
        ("2026-11-25T10:00:00.1234569+05:30", "2026-11-25T10:00:00.123456+05:30"),
        ("2026-11-25T10:00:00.5+05:30", "2026-11-25T10:00:00.500000+05:30"),
        ("2026-11-25T10:00:00.000+05:30", "2026-11-25T10:00:00+05:30"),
        ("2026-11-25T04:30:00Z", "2026-11-25T04:30:00+00:00"),
        ("2026-11-25t04:30:00z", "2026-11-25T04:30:00+00:00"),
        ("2026-11-25 04:30:00-03:00", "2026-11-25T04:30:00-03:00"),
    ],
)
def test_event_time_is_rendered_as_the_contract_says_on_every_output(given, rendered):
    events = [txn(txn_id="P", event_time=given), refund("R", "P", 50_000, event_time=given)]
    effects, _ = replay(events, book())
    grant, clawback = (g for e in effects for g in e.grants)
    decisions = [decided(e) for e in effects]
    for out in (grant, clawback, *decisions):
        assert orjson.loads(out.model_dump_json())["event_time"] == rendered


def test_a_refund_clawback_carries_the_refunds_event_time_a_fraud_clawback_the_payments():
    paid, refunded = "2026-11-25T10:00:00+05:30", "2026-11-27T09:15:00.25+05:30"
    effects, _ = replay([txn(txn_id="P"), refund("R", "P", 50_000, event_time=refunded)], book())
    (claw,) = effects[1].grants
    assert (claw.grant_id, claw.txn_id, claw.cause_txn_id) == ("R:clawback", "P", "R")
    assert orjson.loads(claw.model_dump_json())["event_time"] == "2026-11-27T09:15:00.250000+05:30"
    assert orjson.loads(effects[0].grants[0].model_dump_json())["event_time"] == paid
    # A fraud clawback: the third payment in 10 minutes flags the user and claws
    # back the first two; each carries its payment's instant, in UTC, to the ms.
    rb = book(fraud={"velocity": {"max_payments": 2, "window_seconds": 600}})
    times = [
        "2026-11-25T10:00:00.123456+05:30",
        "2026-11-25T10:01:00+05:30",
        "2026-11-25T04:32:00Z",
    ]
    effects, _ = replay([txn(txn_id=f"V{i}", event_time=t) for i, t in enumerate(times)], rb)
    fraud = [g for e in effects for g in e.grants if g.reason == "FRAUD"]
    assert [(g.grant_id, g.txn_id, g.cause_txn_id) for g in fraud] == [
        ("V0:fraud-clawback", "V0", "V2"),
        ("V1:fraud-clawback", "V1", "V2"),
    ]
    assert [orjson.loads(g.model_dump_json())["event_time"] for g in fraud] == [
        "2026-11-25T04:30:00.123000+00:00",
        "2026-11-25T04:31:00+00:00",
    ]


def test_real_fraud_alerts_validate_against_their_json_schema():
    rb = book(
        fraud={
            "velocity": {"max_payments": 2, "window_seconds": 600},
            "same_payee": {"max_payments": 2, "window_seconds": 3600},
        }
    )
    events = [txn(txn_id=f"A{i}", event_time=f"2026-11-25T10:0{i}:00.{i}5+05:30") for i in range(4)]
    effects, _ = replay(events, rb)
    alerts = [a for e in effects for a in e.alerts]
    assert {a.rule.value for a in alerts} == {"velocity", "same_payee"}
    for alert in alerts:
        assert _validates("fraud-alert", json.loads(alert.model_dump_json())) == []
        assert _validates("fraud-alert", alert.model_dump(mode="json")) == []
        doc = json.loads(alert.model_dump_json())
        assert doc["event_time"].endswith("+00:00")  # alerts carry UTC
    broken = {**json.loads(alerts[0].model_dump_json()), "rule": "sybil"}
    assert _validates("fraud-alert", broken) != []
