"""Packs (schemas/packed.py): the trusted decode gives what validation gives."""

from __future__ import annotations

import pytest

from agents.edge import route
from agents.partitioning import PairPartitioner, Partitioner
from schemas.flag import FraudFlag, Violation
from schemas.fraud_alert import FraudRule
from schemas.packed import (
    PackError,
    PairPacks,
    TxnPacks,
    decode_pair_pack,
    decode_txn_pack,
    encode_pack,
)
from tools.feedgen import generate


def test_trusted_decode_equals_validation_over_a_feed():
    feed = list(generate(3000, seed=11))
    routed = route(
        [("upi.transactions", i % 4, i, m.value) for i, m in enumerate(feed)],
        Partitioner(4),
        None,
        123,
    )
    assert routed.valid > 2500
    for items in routed.packs.values():
        raw = encode_pack(items)
        fast = decode_txn_pack(raw)
        slow = TxnPacks.validate_json(raw).items
        assert fast == slow
        for a, b in zip(fast, slow, strict=True):
            assert a.model_dump_json() == b.model_dump_json()
            assert a.txn.event_time == b.txn.event_time  # type: ignore[union-attr]
            assert a.txn.event_time.utcoffset() == b.txn.event_time.utcoffset()  # type: ignore[union-attr]


def test_trusted_pair_decode_equals_validation():
    feed = list(generate(2000, seed=12))
    routed = route(
        [("upi.transactions", 0, i, m.value) for i, m in enumerate(feed)],
        Partitioner(4),
        PairPartitioner(4),
        5,
    )
    assert routed.pair_packs
    for items in routed.pair_packs.values():
        raw = encode_pack(items)
        fast, slow = decode_pair_pack(raw), PairPacks.validate_json(raw).items
        assert fast == slow
        assert [p.model_dump_json() for p in fast] == [p.model_dump_json() for p in slow]
    with pytest.raises(PackError):
        decode_pair_pack(b'{"v":3,"items":[]}')


def test_flags_are_validated_and_kept_in_order():
    flag = FraudFlag(
        user_vpa="asha.k@okaxis",
        violations=(
            Violation(
                rule=FraudRule.CIRCULAR,
                trigger_txn_id="T2",
                t_ms=5,
                window_ms=60_000,
                txn_ids=("T1", "T2"),
            ),
        ),
        source="upi-rewards.payments-by-pair~lo:1:42000",
        ingested_ns=9,
    )
    assert decode_txn_pack(encode_pack([flag.model_dump_json().encode()])) == [flag]


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b'{"v":2,"items":[]}', b'{"v":1,"items":[{"type":"other"}]}'],
)
def test_anything_else_is_refused(raw: bytes):
    with pytest.raises((PackError, KeyError)):
        decode_txn_pack(raw)
