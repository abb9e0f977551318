"""The transport ceiling: raw aiokafka consume -> produce of the same events.

No parsing, no state: every record of the input topic is sent as is to an
output topic, with the same producer settings as the worker (acks=all, linger)
and one gather per fetched batch. The best any Python worker could do here.

    python -m bench.passthrough --bootstrap HOST:PORT --count N --out TOPIC [--result FILE]

With ``--result`` it writes its own CPU µs per event (``time.process_time``,
from the first fetched batch to the last acknowledged send) as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from topologies import topics


async def run(bootstrap: str, count: int, out: str, linger_ms: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_poll_records=5000,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms, max_batch_size=256 * 1024
    )
    await consumer.start()
    await producer.start()
    try:
        parts = consumer.partitions_for_topic(topics.TRANSACTIONS) or set()
        for _ in range(100):  # Apache Kafka: the metadata may not list the topic yet
            if parts:
                break
            await asyncio.sleep(0.1)
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topics.TRANSACTIONS) or set()
        tps = [TopicPartition(topics.TRANSACTIONS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        done = 0
        started = cpu0 = 0.0
        while done < count:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            futures = []
            for records in batches.values():
                for r in records:
                    futures.append(await producer.send(out, r.value, key=r.key))
            if futures and not started:
                started, cpu0 = time.monotonic(), time.process_time()
            await asyncio.gather(*futures)
            done += len(futures)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu0
        return {
            "events": done,
            "seconds": round(seconds, 3),
            "cpu_us_per_event": round(cpu * 1e6 / max(done, 1), 1),
        }
    finally:
        await producer.stop()
        await consumer.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", default="bench.passthrough")
    p.add_argument("--linger-ms", type=int, default=5)
    p.add_argument("--result", type=Path, help="write the JSON result here")
    args = p.parse_args()
    result = asyncio.run(run(args.bootstrap, args.count, args.out, args.linger_ms))
    if args.result is not None:
        args.result.write_bytes(orjson.dumps(result))
    print(f"passthrough {result}", flush=True)


if __name__ == "__main__":
    main()
