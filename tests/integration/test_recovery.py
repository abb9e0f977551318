"""State survives a worker restart: from local rocksdict, and from the changelog
alone when the data directory is gone (a new machine taking over)."""

from __future__ import annotations

import json

import orjson
import pytest

from tests.integration.conftest import values, wait_for_outputs
from tools.topic_io import producer
from topologies import topics

pytestmark = pytest.mark.integration


def payment(txn_id: str, amount: int, when: str = "2026-11-22T12:00:00+05:30") -> bytes:
    return json.dumps(
        {
            "txn_id": txn_id,
            "kind": "PAYMENT",
            "status": "SUCCESS",
            "payer_vpa": "vikram.s@oksbi",
            "payee_vpa": "bigbasket@ybl",
            "payee_kind": "MERCHANT",
            "mcc": "5411",
            "amount_paise": amount,
            "currency": "INR",
            "event_time": when,
        }
    ).encode()


def refund(txn_id: str, original: str, amount: int) -> bytes:
    doc = json.loads(payment(txn_id, amount, "2026-11-23T09:00:00+05:30"))
    doc.update(kind="REFUND", original_txn_id=original)
    return json.dumps(doc).encode()


def send(bootstrap: str, *values: bytes) -> None:
    prod = producer([bootstrap])
    for value in values:
        prod.send(topics.TRANSACTIONS, key=b"vikram", value=value)
    prod.flush()
    prod.close()


@pytest.mark.parametrize("fresh_disk", [False, True], ids=["same-disk", "changelog-only"])
def test_state_survives_restart(broker, workers, fresh_disk: bool):
    first = workers.start()
    # 3 payments of Rs 5,000: 75 + 75 + 50 coins (daily cap 200 binds on the third).
    send(broker.bootstrap, payment("P1", 500_000), payment("P2", 500_000), payment("P3", 500_000))
    wait_for_outputs(broker.bootstrap, 3)
    assert first.stop() == 0  # SIGTERM: a clean stop

    second = workers.start(data_dir=None if fresh_disk else first.data_dir)
    send(
        broker.bootstrap,
        payment("P1", 500_000),  # resent by the bank: must not earn again
        payment("P4", 500_000),  # same day, cap already used up
        refund("R1", "P2", 500_000),  # full refund of P2: claw back its 75
        # P3's record was the last one written to the changelog: it must be recovered too.
        refund("R2", "P3", 250_000),  # half of P3's 50
    )
    out = wait_for_outputs(broker.bootstrap, 7)

    decisions = [orjson.loads(v) for v in values(out, topics.DECISIONS)]
    got = [(d["txn_id"], d["outcome"], d["coins"]) for d in decisions]
    assert got == [
        ("P1", "GRANTED", 75),
        ("P2", "GRANTED", 75),
        ("P3", "GRANTED", 50),
        ("P1", "DUPLICATE", 0),
        ("P4", "NO_REWARD", 0),
        ("R1", "CLAWED_BACK", 75),
        ("R2", "CLAWED_BACK", 25),
    ]
    grants = [orjson.loads(v) for v in values(out, topics.COIN_GRANTS)]
    assert [(g["grant_id"], g["kind"], g["coins"]) for g in grants] == [
        ("P1:grant", "GRANT", 75),
        ("P2:grant", "GRANT", 75),
        ("P3:grant", "GRANT", 50),
        ("R1:clawback", "CLAWBACK", 75),
        ("R2:clawback", "CLAWBACK", 25),
    ]
    assert second.proc.poll() is None
