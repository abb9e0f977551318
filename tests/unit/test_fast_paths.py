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


def test_packs_keep_items_per_partition_in_order_and_decode_as_the_contract():
    from agents.circular import ByPair
    from agents.emit import PACK_BYTES, Outbox, Packer
    from schemas.flag import PairPack
    from schemas.routed import RoutedPack

    class Topic:
        def get_topic_name(self) -> str:
            return "t"

    sent: list[tuple[bytes | None, bytes, int | None]] = []

    class Box(Outbox):
        def __init__(self) -> None:
            pass

        def add(self, topic, key, value, partition=None):
            sent.append((key, value, partition))

    routed, pairs = [], []
    for offset, m in enumerate(generate(4000, seed=3, bad_share=0.0)):
        source = Source("upi.transactions", 1, offset)
        txn = decode(m.value, source)
        assert isinstance(txn, Transaction) and m.value is not None
        routed.append((txn.payer_vpa, routed_bytes(m.value, str(source), 5)))
        doc = pair_payment_doc(txn, str(source), 5)
        if doc is not None:
            pairs.append((doc["payer_vpa"], orjson.dumps(doc)))

    def partition(key: bytes) -> int:
        return len(key) % 3

    for items, adapter, kind in ((routed, ByPayer, RoutedPack), (pairs, ByPair, PairPack)):
        sent.clear()
        packer = Packer(Topic(), partition)  # type: ignore[arg-type]
        for user, item in items:
            packer.add(user.encode(), item)
        packer.into(Box())
        got: dict[int, list[object]] = {}
        for key, value, p in sent:
            assert key is None and p is not None and len(value) <= PACK_BYTES + 4096
            pack = adapter.validate_json(value)
            assert isinstance(pack, kind)
            got.setdefault(p, []).extend(pack.items)
        for p in range(3):
            want = [adapter.validate_json(i) for u, i in items if partition(u.encode()) == p]
            assert got.get(p, []) == want
        assert len(sent) >= 3
