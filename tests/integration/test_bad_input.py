"""Hostile and broken input through a live worker: every message dead-lettered
with the right reason, the worker stays up, good events around them decided."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.integration.conftest import values, wait_for_outputs
from tools.topic_io import producer
from topologies import topics

pytestmark = pytest.mark.integration

GOOD = {
    "txn_id": "GOOD-1",
    "kind": "PAYMENT",
    "status": "SUCCESS",
    "payer_vpa": "Asha.Rao@okicici",
    "payee_vpa": "dmart.powai@ybl",
    "payee_kind": "MERCHANT",
    "mcc": "5411",
    "amount_paise": 250_000,
    "currency": "INR",
    "event_time": "2026-11-21T19:05:00+05:30",
}


def variant(**changes: object) -> bytes:
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


BAD: list[tuple[bytes | None, str, str | None]] = [
    (None, "EMPTY", None),
    (b"", "EMPTY", None),
    (b"\xff\xfe\x00garbage", "NOT_UTF8", None),
    (b"{not json", "NOT_JSON", None),
    (b"[1, 2, 3]", "NOT_OBJECT", None),
    (b"42", "NOT_OBJECT", None),
    (b"{" + b'"pad": "' + b"x" * 200_000 + b'"}', "TOO_LARGE", None),
    (variant(txn_id=...), "MISSING_FIELD", "txn_id"),
    (variant(txn_id="has space"), "INVALID_FIELD", "txn_id"),
    (variant(txn_id="x" * 65), "INVALID_FIELD", "txn_id"),
    (variant(kind="TRANSFER"), "INVALID_FIELD", "kind"),
    (variant(status="DONE"), "INVALID_FIELD", "status"),
    (variant(payer_vpa="no-at-sign"), "INVALID_FIELD", "payer_vpa"),
    (variant(payee_vpa="a@1bank"), "INVALID_FIELD", "payee_vpa"),
    (variant(payee_kind="SHOP"), "INVALID_FIELD", "payee_kind"),
    (variant(mcc="54111"), "INVALID_FIELD", "mcc"),
    (variant(mcc=...), "MISSING_FIELD", "mcc"),
    (variant(amount_paise=2500.0), "INVALID_FIELD", "amount_paise"),
    (variant(amount_paise="2500"), "INVALID_FIELD", "amount_paise"),
    (variant(amount_paise=True), "INVALID_FIELD", "amount_paise"),
    (variant(amount_paise=0), "INVALID_FIELD", "amount_paise"),
    (variant(amount_paise=50_000_001), "INVALID_FIELD", "amount_paise"),
    (variant(currency="USD"), "INVALID_FIELD", "currency"),
    (variant(event_time="2026-11-21T19:05:00"), "INVALID_FIELD", "event_time"),
    (variant(event_time=1763731500), "INVALID_FIELD", "event_time"),
    (variant(kind="REFUND"), "MISSING_FIELD", "original_txn_id"),
    (variant(original_txn_id="GOOD-0"), "INVALID_FIELD", "original_txn_id"),
]


def test_every_bad_message_is_dead_lettered_and_the_worker_survives(broker, workers):
    worker = workers.start()
    prod = producer([broker.bootstrap])
    sent = 0
    for index, (raw, _, _) in enumerate(BAD):
        # A good event between every bad one, all for one user on one partition.
        prod.send(topics.TRANSACTIONS, key=b"k", value=variant(txn_id=f"GOOD-{index}"))
        prod.send(topics.TRANSACTIONS, key=b"k", value=raw)
        sent += 2
    prod.flush()
    out = wait_for_outputs(broker.bootstrap, sent)

    assert out.count(topics.DEAD_LETTERS) == len(BAD)
    assert out.count(topics.DECISIONS) == len(BAD)
    letters = [orjson.loads(v) for v in values(out, topics.DEAD_LETTERS)]
    letters.sort(key=lambda d: d["offset"])
    assert [(d["reason"], d.get("field")) for d in letters] == [(r, f) for _, r, f in BAD]
    for letter, (raw, _, _) in zip(letters, BAD, strict=True):
        assert letter["topic"] == topics.TRANSACTIONS
        assert letter["raw_size"] == len(raw or b"")
        if letter["reason"] == "TOO_LARGE":
            assert letter["raw_truncated"] is True
        elif letter["raw_encoding"] == "utf-8":
            assert letter["raw"].encode() == (raw or b"")

    decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
    assert {d["txn_id"] for d in decisions} == {f"GOOD-{i}" for i in range(len(BAD))}
    assert all(d["user_vpa"] == "asha.rao@okicici" for d in decisions)
    assert worker.proc.poll() is None and worker.healthy()
    metrics = worker.metrics()
    assert 'rewards_dead_letters_total{reason="INVALID_FIELD"} 17.0' in metrics
    assert 'rewards_dead_letters_total{reason="MISSING_FIELD"} 3.0' in metrics
