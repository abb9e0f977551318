"""One Kafka transaction per batch, for ``processing_guarantee=exactly_once`` (Apache Kafka).

Each stage of a worker (the edge, decide, circular) has its own transactional
aiokafka producer: a producer holds one transaction at a time and the stages'
batches run concurrently. Per batch (``agents.checkpoint``, ``agents.edge``):
``begin_transaction`` → the outputs and changelog records, all acknowledged →
``send_offsets_to_transaction`` (the batch's input offsets, for the stage's
consumer group) → ``commit_transaction``; only then the local store. A batch
that fails never commits: the worker fail-stops (``agents.guard``), the
restarted worker's producer, with the same ``transactional_id``, fences the
old one and the broker aborts its open transaction; the batch is read again
from the committed offsets, against the state its changelog committed.

The ``transactional_id`` is ``<app_id>-<stage>-<worker id>``, the worker id
kept in the data dir (``topologies.worker``): a worker restarted on its data
dir fences its predecessor at once. A worker that never comes back (or comes
back on an empty data dir) leaves its open transaction to the broker's
``transaction_timeout_ms``: until then ``read_committed`` readers of the
partitions it wrote wait at the last stable offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from agents.checkpoint import AiokafkaSender


def transactional_id(app_id: str, stage: str, worker_id: str) -> str:
    return f"{app_id}-{stage}-{worker_id}"


class TransactionalSender(AiokafkaSender):
    """An ``AiokafkaSender`` over its own transactional producer, started on first use."""

    def __init__(
        self,
        bootstrap: list[str],
        txn_id: str,
        group_id: str,
        client_options: Mapping[str, Any],
        timeout_ms: int,
        linger_ms: int = 0,
    ) -> None:
        self.transactional_id = txn_id
        self.group_id = group_id
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "transactional_id": txn_id,
            "transaction_timeout_ms": timeout_ms,
            "acks": "all",
            "linger_ms": linger_ms,
            "max_batch_size": 1024 * 1024,
            "max_request_size": 4 * 1024 * 1024,
        }
        self.client_options = dict(client_options)
        self._raw: AIOKafkaProducer | None = None  # made on the worker's loop, at first use
        super().__init__(lambda: self.producer)
        self._lock = asyncio.Lock()

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._raw is None:
            raise RuntimeError(f"{self.transactional_id}: producer not started")
        return self._raw

    async def start(self) -> None:
        """InitProducerId: fences an older producer with this id, aborting its transaction."""
        async with self._lock:
            if self._raw is None:
                producer = AIOKafkaProducer(**self._options, **self.client_options)
                await producer.start()
                self._raw = producer

    async def stop(self) -> None:
        async with self._lock:
            if self._raw is not None:
                producer, self._raw = self._raw, None
                await producer.stop()

    async def begin(self) -> None:
        await self.start()
        await self.producer.begin_transaction()

    async def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """The input offsets (next offset to read, per partition) join the transaction,
        which then commits: outputs, changelog and offsets become visible together."""
        if offsets:
            await self.producer.send_offsets_to_transaction(
                {TopicPartition(t, p): o for (t, p), o in offsets.items()}, self.group_id
            )
        await self.producer.commit_transaction()
