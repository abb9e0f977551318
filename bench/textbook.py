"""The baseline: the reward job as a Faust user would write it from the docs.

One event at a time: a ``faust.Record`` per message, ``group_by`` payer (one
re-key topic), a table of coins per user and day for the daily cap, and one
``send`` of a decision per event. Malformed messages are skipped by Faust's
deserializer, so the bench counts its decisions against the valid events.

Run by ``python -m bench`` as a subprocess, configured from the environment:
``BENCH_BOOTSTRAP``, ``BENCH_DATA_DIR``, ``BENCH_WEB_PORT``.
"""

from __future__ import annotations

import os

import faust

BOOTSTRAP = os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092")
DAILY_CAP = 200

app = faust.App(
    "bench-textbook",
    broker=f"kafka://{BOOTSTRAP}",
    store="rocksdb://",
    datadir=os.environ.get("BENCH_DATA_DIR", "var/bench/textbook"),
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6099")),
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    topic_partitions=8,
    consumer_auto_offset_reset="earliest",
    producer_acks=-1,
    broker_session_timeout=10,
    broker_rebalance_timeout=10,
    autodiscover=False,
)


class Txn(faust.Record, serializer="json"):
    txn_id: str
    kind: str
    status: str
    payer_vpa: str
    payee_vpa: str
    payee_kind: str
    amount_paise: int
    currency: str
    event_time: str
    mcc: str | None = None
    original_txn_id: str | None = None


class Decision(faust.Record, serializer="json"):
    txn_id: str
    user_vpa: str
    outcome: str
    coins: int


feed = app.topic("upi.transactions", value_type=Txn)
decisions = app.topic("bench.textbook-decisions", value_type=Decision)
coins_today = app.Table("coins-today", default=int, partitions=8)


@app.agent(feed)
async def rewards(stream: faust.StreamT[Txn]) -> None:
    async for txn in stream.group_by(Txn.payer_vpa, name="txns-by-payer"):  # type: ignore[arg-type]
        coins = 0
        try:
            if txn.status == "SUCCESS" and txn.kind == "PAYMENT" and txn.payee_kind == "MERCHANT":
                key = f"{txn.payer_vpa}|{txn.event_time[:10]}"
                earned = min(int(txn.amount_paise) // 100 // 100, 50)
                coins = max(min(earned, DAILY_CAP - coins_today[key]), 0)
                coins_today[key] += coins
        except (TypeError, ValueError):  # a malformed record that decoded: skip it
            continue
        outcome = "GRANTED" if coins else "NO_REWARD"
        await decisions.send(
            key=txn.payer_vpa,
            value=Decision(txn_id=txn.txn_id, user_vpa=txn.payer_vpa, outcome=outcome, coins=coins),
        )


if __name__ == "__main__":
    app.main()
