"""Stage 1: validate the bank feed; dead-letter what is bad, re-key the rest by payer.

Thin adapter over ``rewards.validate.decode``. Never raises on a message: a
crash here would stall every user on the partition.
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust
import orjson
from faust.streams import Stream
from faust.types import EventT, StreamT, TopicT

from agents.emit import Emitter, Outbox, Packer
from agents.metrics import Metrics
from rewards.circular import pair_key
from rewards.validate import Source, dead_letter, decode
from rewards.windows import epoch_ms
from schemas.common import TxnKind, TxnStatus
from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.flag import PairPayment
from schemas.transaction import Transaction

log = logging.getLogger(__name__)


def pair_payment(txn: Transaction, source: Source, now_ns: int) -> PairPayment | None:
    """What the circular detector needs of a payment; only SUCCESS PAYMENTs count."""
    doc = pair_payment_doc(txn, str(source), now_ns)
    return None if doc is None else PairPayment(**doc)


def pair_payment_doc(txn: Transaction, source: str, now_ns: int) -> dict[str, Any] | None:
    """``PairPayment`` as a plain dict (orjson-encoded on the hot path; same fields)."""
    if (
        txn.kind is not TxnKind.PAYMENT
        or txn.status is not TxnStatus.SUCCESS
        or txn.payer_vpa == txn.payee_vpa
    ):
        return None
    return {
        "txn_id": txn.txn_id,
        "payer_vpa": txn.payer_vpa,
        "payee_vpa": txn.payee_vpa,
        "t_ms": epoch_ms(txn.event_time),
        "source": source,
        "ingested_ns": now_ns,
    }


def routed_bytes(raw: bytes, source: str, now_ns: int) -> bytes:
    """The ``RoutedTransaction`` envelope around the feed bytes as they came.

    ``raw`` has just validated as a ``Transaction``; the decide stage validates
    the envelope (and so the same bytes, the same way) again, so re-encoding
    the model here would only cost time. A unit test checks that this decodes
    to the same ``RoutedTransaction`` as building the model.
    """
    return b"".join(
        (
            b'{"type":"txn","source":',
            orjson.dumps(source),
            b',"ingested_ns":',
            str(now_ns).encode(),
            b',"txn":',
            raw,
            b"}",
        )
    )


def dead_letter_bytes(letter: DeadLetter) -> bytes:
    return letter.model_dump_json(exclude_none=True).encode()


def queue_dead_letter(outbox: Outbox, topic: TopicT, letter: DeadLetter, metrics: Metrics) -> None:
    metrics.dead_letters.labels(reason=letter.reason.value).inc()
    outbox.add(topic, None, dead_letter_bytes(letter))


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
) -> None:
    """``by_pair`` is None when the circular detector is off: nothing is sent there."""

    @app.agent(feed, name="ingest")
    async def ingest(stream: StreamT[bytes]) -> None:
        async for events in cast(Stream[bytes], stream).take_events(batch_max, within=within_s):
            now_ns = time.time_ns()
            outbox = emit.outbox()
            payers = Packer(by_payer, await emit.partitioner(by_payer))
            pairs = Packer(by_pair, await emit.partitioner(by_pair)) if by_pair else None
            for event in events:
                msg = event.message
                try:
                    source = Source(msg.topic, msg.partition, msg.offset)
                    result = decode(msg.value, source)
                    if isinstance(result, DeadLetter):
                        queue_dead_letter(outbox, dead_letters, result, metrics)
                        continue
                    where = str(source)
                    raw = cast(bytes, msg.value)
                    payers.add(result.payer_vpa.encode(), routed_bytes(raw, where, now_ns))
                    if pairs is not None:
                        pair = pair_payment_doc(result, where, now_ns)
                        if pair is not None:
                            key = pair_key(pair["payer_vpa"], pair["payee_vpa"]).encode()
                            pairs.add(key, orjson.dumps(pair))
                except Exception as exc:
                    queue_dead_letter(outbox, dead_letters, internal_error(event, exc), metrics)
            # One record per partition of each internal topic (schemas.routed.RoutedPack).
            payers.into(outbox)
            if pairs is not None:
                pairs.into(outbox)
            # Acks are not awaited here: Faust flushes the producer before it
            # commits the feed offsets, as it did for one send per record.
            await outbox.flush()
