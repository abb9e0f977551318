"""The worker's hand-built wire formats equal what the pydantic contracts build."""

from __future__ import annotations

import orjson

from agents.ingest import pair_payment, pair_payment_doc, routed_bytes
from rewards.feedgen import generate
from rewards.validate import Source, decode
from schemas.flag import PairPayment
from schemas.routed import ByPayer, RoutedTransaction
from schemas.transaction import Transaction


def test_routed_envelope_around_raw_bytes_equals_the_model():
    checked = 0
    for offset, m in enumerate(generate(3000, seed=5, bad_share=0.05, fraud_share=0.02)):
        source = Source("upi.transactions", 3, offset)
        txn = decode(m.value, source)
        if not isinstance(txn, Transaction):
            continue
        assert m.value is not None
        fast = ByPayer.validate_json(routed_bytes(m.value, str(source), 123))
        model = RoutedTransaction(txn=txn, source=str(source), ingested_ns=123)
        assert fast == ByPayer.validate_json(model.model_dump_json())
        assert fast == model
        checked += 1
    assert checked > 2500


def test_routed_envelope_keeps_raw_quirks_equivalent():
    raw = (
        b' {"txn_id":"T1","kind":"PAYMENT","status":"SUCCESS","payer_vpa":"A.B@OKAXIS",'
        b'"payee_vpa":"shop@ybl","payee_kind":"MERCHANT","mcc":"5411","amount_paise":100,'
        b'"currency":"INR","event_time":"2026-11-20T09:00:00.123456789+05:30"}\n'
    )
    source = Source("upi.transactions", 0, 7)
    txn = decode(raw, source)
    assert isinstance(txn, Transaction)
    fast = ByPayer.validate_json(routed_bytes(raw, str(source), 1))
    assert fast == RoutedTransaction(txn=txn, source=str(source), ingested_ns=1)


def test_pair_payment_doc_validates_as_the_contract():
    for offset, m in enumerate(generate(2000, seed=9, bad_share=0.0)):
        source = Source("upi.transactions", 0, offset)
        txn = decode(m.value, source)
        assert isinstance(txn, Transaction)
        doc = pair_payment_doc(txn, str(source), 42)
        model = pair_payment(txn, source, 42)
        if doc is None:
            assert model is None
            continue
        assert PairPayment.model_validate_json(orjson.dumps(doc)) == model
