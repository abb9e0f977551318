"""A bug of ours parks the item in the dead-letter topic, pointing at the feed message."""

from __future__ import annotations

import logging

from agents.dead_letters import internal_error
from rewards.validate import Source
from schemas.transaction import Transaction

TXN = Transaction.model_validate_json(
    b'{"txn_id":"T1","kind":"PAYMENT","status":"SUCCESS","payer_vpa":"meera.iyer@oksbi",'
    b'"payee_vpa":"chaipoint.7@ybl","payee_kind":"MERCHANT","mcc":"5814","amount_paise":2000,'
    b'"currency":"INR","event_time":"2026-11-21T08:00:00+05:30"}'
)


def test_points_at_the_feed_message_and_keeps_personal_data_out_of_logs(caplog):
    exc = ValueError("boom for meera.iyer@oksbi")
    with caplog.at_level(logging.ERROR):
        letter = internal_error(
            Source.parse("upi.transactions:5:1234"), exc, TXN.model_dump_json().encode()
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


def test_an_unreadable_pack_keeps_its_internal_position():
    where = Source("upi-rewards.txns-by-payer", 3, 77)
    letter = internal_error(where, KeyError("x"), b"not a pack")
    assert (letter.topic, letter.partition, letter.offset) == ("upi-rewards.txns-by-payer", 3, 77)
    assert letter.raw == "not a pack"
    assert Source.parse("a.b:0:9") == Source("a.b", 0, 9)
    assert str(Source("upi.transactions", 4, 17)) == "upi.transactions:4:17"
