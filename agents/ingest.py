"""Stage 1: validate the bank feed; dead-letter what is bad, re-key the rest by payer.

Thin adapter over ``rewards.validate.decode``. Never raises on a message: a
crash here would stall every user on the partition.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import faust
from faust.types import EventT, StreamT, TopicT

from agents.continuity import fail_on_gap
from agents.emit import Emitter
from agents.guard import run_batches
from agents.metrics import Metrics
from rewards.circular import pair_key
from rewards.validate import Source, dead_letter, decode
from rewards.windows import epoch_ms
from schemas.common import TxnKind, TxnStatus
from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.flag import PairPayment
from schemas.routed import RoutedTransaction
from schemas.transaction import Transaction

log = logging.getLogger(__name__)


def pair_payment(txn: Transaction, source: Source, now_ns: int) -> PairPayment | None:
    """What the circular detector needs of a payment; only SUCCESS PAYMENTs count."""
    if (
        txn.kind is not TxnKind.PAYMENT
        or txn.status is not TxnStatus.SUCCESS
        or txn.payer_vpa == txn.payee_vpa
    ):
        return None
    return PairPayment(
        txn_id=txn.txn_id,
        payer_vpa=txn.payer_vpa,
        payee_vpa=txn.payee_vpa,
        t_ms=epoch_ms(txn.event_time),
        source=str(source),
        ingested_ns=now_ns,
    )


def dead_letter_bytes(letter: DeadLetter) -> bytes:
    return letter.model_dump_json(exclude_none=True).encode()


async def send_dead_letter(
    emit: Emitter, topic: TopicT, letter: DeadLetter, metrics: Metrics
) -> Any:
    metrics.dead_letters.labels(reason=letter.reason.value).inc()
    return await emit.send(topic, None, dead_letter_bytes(letter))


def internal_error(
    event: EventT[bytes], exc: BaseException, origin: Source | None = None, raw: bytes | None = None
) -> DeadLetter:
    """Park an event our own code could not handle.

    The log names the position and the exception type only: exception texts
    (pydantic's among them) can quote the payload, and payloads carry VPAs.
    ``origin``/``raw`` point the dead letter at the feed message when known.
    """
    msg = event.message
    where = origin or Source(msg.topic, msg.partition, msg.offset)
    log.error(
        "internal error on %s[%s]@%s: %s (parked in the dead-letter topic)",
        where.topic,
        where.partition,
        where.offset,
        type(exc).__name__,
    )
    return dead_letter(
        DeadLetterReason.INTERNAL_ERROR,
        f"{type(exc).__name__}: {exc}",
        raw if raw is not None else (msg.value or b""),
        where,
    )


def attach_ingest(
    app: faust.App,
    emit: Emitter,
    feed: TopicT,
    by_payer: TopicT,
    by_pair: TopicT | None,
    dead_letters: TopicT,
    metrics: Metrics,
    batch_max: int,
    within_s: float,
    gaps: Literal["fail", "count"] = "fail",
) -> None:
    """``by_pair`` is None when the circular detector is off: nothing is sent there.

    ``gaps``: what a jump in the feed's offsets does (``agents.continuity``).
    """

    def count_gap(topic: str, partition: int, first: int, last: int) -> None:
        metrics.input_offset_gaps.labels(topic=topic).inc(last - first + 1)
        log.warning("%s[%s]: offsets %s..%s never delivered", topic, partition, first, last)

    gap_policy = fail_on_gap if gaps == "fail" else count_gap

    async def ingest_batch(events: Sequence[EventT[bytes]]) -> None:
        now_ns = time.time_ns()
        sent: list[Any] = []
        for event in events:
            msg = event.message
            try:
                source = Source(msg.topic, msg.partition, msg.offset)
                result = decode(msg.value, source)
                if isinstance(result, DeadLetter):
                    sent.append(await send_dead_letter(emit, dead_letters, result, metrics))
                    continue
                routed = RoutedTransaction(
                    txn=result,
                    source=str(source),
                    ingested_ns=now_ns,
                )
                sent.append(
                    await emit.send(
                        by_payer, result.payer_vpa.encode(), routed.model_dump_json().encode()
                    )
                )
                pair = pair_payment(result, source, now_ns) if by_pair else None
                if by_pair is not None and pair is not None:
                    key = pair_key(pair.payer_vpa, pair.payee_vpa).encode()
                    sent.append(await emit.send(by_pair, key, pair.model_dump_json().encode()))
            except Exception as exc:
                letter = internal_error(event, exc)
                sent.append(await send_dead_letter(emit, dead_letters, letter, metrics))
        # Every forward acknowledged before the stream acks the batch: a forward
        # the broker refused fails the batch (agents.guard), it is never committed past.
        await asyncio.gather(*sent)

    @app.agent(feed, name="ingest")
    async def ingest(stream: StreamT[bytes]) -> None:
        await run_batches(app, "ingest", stream, ingest_batch, batch_max, within_s, gap_policy)
