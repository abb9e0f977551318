"""The ingest edge's pure part (agents/edge.py): validate, dead-letter, pack per partition."""

from __future__ import annotations

import orjson
from aiokafka.partitioner import DefaultPartitioner
from kafka.partitioner.default import murmur2

from agents.edge import route
from agents.partitioning import PairPartitioner, Partitioner, partition_for
from rewards.circular import pair_key
from schemas.packed import PairPacks, TxnPacks, encode_pack

FEED = "upi.transactions"


def txn(txn_id: str, payer: str, payee: str = "chai.point@ybl", status: str = "SUCCESS") -> bytes:
    return orjson.dumps(
        {
            "txn_id": txn_id,
            "kind": "PAYMENT",
            "status": status,
            "payer_vpa": payer,
            "payee_vpa": payee,
            "payee_kind": "MERCHANT",
            "mcc": "5814",
            "amount_paise": 4500,
            "currency": "INR",
            "event_time": "2026-11-21T08:00:00+05:30",
        }
    )


def test_partition_matches_kafkas_default_partitioner():
    for key in (b"asha.k@okaxis", b"ravi@ybl", b"x" * 40, b"\xe0\xa4\x85@upi"):
        for n in (1, 4, 8, 12):
            want = DefaultPartitioner()(key, list(range(n)), list(range(n)))
            assert partition_for(key, n) == want == (murmur2(key) & 0x7FFFFFFF) % n
            assert Partitioner(n)(key) == want


def test_route_packs_each_users_events_in_order_and_parks_bad_input():
    messages = [
        (FEED, 0, 10, txn("T1", "asha.k@okaxis")),
        (FEED, 0, 11, b"not json"),
        (FEED, 1, 5, txn("T2", "ravi@ybl", status="FAILED")),
        (FEED, 0, 12, txn("T3", "asha.k@okaxis", payee="ravi@ybl")),
        (FEED, 1, 6, None),
    ]
    by_payer, by_pair = Partitioner(4), PairPartitioner(4)
    out = route(messages, by_payer, by_pair, now_ns=7)
    assert out.valid == 3
    assert [(d.reason.value, d.partition, d.offset) for d in out.letters] == [
        ("NOT_JSON", 0, 11),
        ("EMPTY", 1, 6),
    ]
    items = {p: TxnPacks.validate_json(encode_pack(v)).items for p, v in out.packs.items()}
    asha = items[by_payer(b"asha.k@okaxis")]
    asha_items = [i for i in asha if i.txn.payer_vpa == "asha.k@okaxis"]  # type: ignore[union-attr]
    assert [(i.txn.txn_id, i.source, i.ingested_ns) for i in asha_items] == [  # type: ignore[union-attr]
        ("T1", "upi.transactions:0:10", 7),
        ("T3", "upi.transactions:0:12", 7),
    ]
    # Only SUCCESS payments between two users go to the pair stream, by the unordered pair.
    pairs = {p: PairPacks.validate_json(encode_pack(v)).items for p, v in out.pair_packs.items()}
    flat = [(p, i.txn_id) for p, its in pairs.items() for i in its]
    assert sorted(t for _, t in flat) == ["T1", "T3"]
    for p, txn_id in flat:
        other = "chai.point@ybl" if txn_id == "T1" else "ravi@ybl"
        assert p == by_pair(pair_key("asha.k@okaxis", other).encode())


def test_without_the_circular_detector_nothing_goes_to_the_pair_stream():
    out = route([(FEED, 0, 1, txn("T1", "asha.k@okaxis"))], Partitioner(2), None, 0)
    assert out.valid == 1 and out.pair_packs == {}


def test_a_bug_in_routing_parks_the_message(monkeypatch):
    import agents.edge as edge

    def broken(*args: object) -> bytes:
        raise ValueError("boom")

    monkeypatch.setattr(edge, "routed_item", broken)
    out = route([(FEED, 3, 9, txn("T1", "asha.k@okaxis"))], Partitioner(2), None, 0)
    assert out.valid == 0 and out.packs == {}
    assert [(d.reason.value, d.partition, d.offset) for d in out.letters] == [
        ("INTERNAL_ERROR", 3, 9)
    ]


def test_after_an_assignment_the_first_record_must_be_at_the_commit_or_the_log_start():
    """A feed partition never committed is read from its log start: a first record
    beyond it is a skip (fail-stop); one whose lookup failed passes as it comes."""
    import asyncio

    import pytest
    from aiokafka import TopicPartition
    from aiokafka.errors import KafkaTimeoutError
    from prometheus_client import CollectorRegistry

    from agents.edge import Edge, EdgeConfig, _Revoke
    from agents.metrics import Metrics
    from workarounds.continuity import RecordSkipped

    class Consumer:
        async def committed(self, tp: TopicPartition) -> int | None:
            if tp.partition == 2:
                raise KafkaTimeoutError()
            return {0: 40, 1: None}[tp.partition]

        async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
            return dict.fromkeys(tps, 12)

    edge = Edge(EdgeConfig([], "g", FEED, "p", None, "dl", 4), Metrics(CollectorRegistry()))
    edge._consumer = Consumer()
    tps = [TopicPartition(FEED, p) for p in range(3)]
    asyncio.run(_Revoke(edge).on_partitions_assigned(tps))
    assert edge.committed == {tps[0]: 40, tps[1]: 12}
    edge._continuity.check_positions([(FEED, 0, 40), (FEED, 1, 12), (FEED, 2, 99)])

    asyncio.run(_Revoke(edge).on_partitions_assigned(tps))  # the next generation
    edge._continuity.check_positions([(FEED, 1, 13)])  # where this edge left off
    asyncio.run(_Revoke(edge).on_partitions_assigned(tps))
    with pytest.raises(RecordSkipped) as err:
        edge._continuity.check_positions([(FEED, 1, 16)])
    assert (err.value.partition, err.value.first, err.value.last) == (1, 14, 15)
