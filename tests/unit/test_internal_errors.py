"""A bug of ours parks the event in the dead-letter topic, pointing at the feed message."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

from agents.ingest import internal_error
from rewards.validate import Source
from schemas.routed import RoutedTransaction
from schemas.transaction import Transaction

TXN = Transaction.model_validate_json(
    b'{"txn_id":"T1","kind":"PAYMENT","status":"SUCCESS","payer_vpa":"meera.iyer@oksbi",'
    b'"payee_vpa":"chaipoint.7@ybl","payee_kind":"MERCHANT","mcc":"5814","amount_paise":2000,'
    b'"currency":"INR","event_time":"2026-11-21T08:00:00+05:30"}'
)


def fake_event(value: bytes) -> Any:
    return SimpleNamespace(
        message=SimpleNamespace(
            topic="upi-rewards.txns-by-payer", partition=3, offset=77, value=value
        )
    )


def test_points_at_the_feed_message_and_keeps_personal_data_out_of_logs(caplog):
    routed = RoutedTransaction(txn=TXN, source="upi.transactions:5:1234", ingested_ns=1)
    exc = ValueError("boom for meera.iyer@oksbi")
    with caplog.at_level(logging.ERROR):
        letter = internal_error(
            fake_event(routed.model_dump_json().encode()),
            exc,
            Source.parse(routed.source),
            TXN.model_dump_json().encode(),
        )
    assert (letter.reason, letter.topic, letter.partition, letter.offset) == (
        "INTERNAL_ERROR",
        "upi.transactions",
        5,
        1234,
    )
    assert "ValueError" in letter.detail
    assert Transaction.model_validate_json(letter.raw) == TXN
    assert caplog.records and "meera" not in caplog.text and "ValueError" in caplog.text


def test_without_an_envelope_the_internal_position_is_kept():
    letter = internal_error(fake_event(b"not an envelope"), KeyError("x"))
    assert (letter.topic, letter.partition, letter.offset) == ("upi-rewards.txns-by-payer", 3, 77)
    assert letter.raw == "not an envelope"
    assert Source.parse("a.b:0:9") == Source("a.b", 0, 9)
    assert str(Source("upi.transactions", 4, 17)) == "upi.transactions:4:17"
