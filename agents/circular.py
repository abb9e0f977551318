"""Stage 2b: circular transfers, on payments re-keyed by the unordered pair.

Thin adapter over ``rewards.circular``. A hit flags both users of the pair: the
flags go back to ``txns-by-payer`` keyed by each user, where the decide stage
applies them in order with that user's own events (alert, hold, clawback).
One flag message per user per pair message, with a source whose path names the
side (``~lo``/``~hi``), so the decide stage's progress marks, which need
increasing offsets per path, recognise a replayed flag.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import faust
from faust.types import EventT, StreamT, TableT, TopicT

from agents.batch import Batch
from agents.context import within_event
from agents.emit import Emitter
from agents.guard import run_batches
from agents.ingest import internal_error, send_dead_letter
from agents.metrics import Metrics
from rewards.circular import PairState, flags_for, pair_key
from schemas.flag import PairPayment


def attach_circular(
    app: faust.App,
    emit: Emitter,
    by_pair: TopicT,
    table: TableT[bytes, bytes],
    by_payer: TopicT,
    dead_letters: TopicT,
    window_ms: int,
    lateness_ms: int,
    metrics: Metrics,
    batch_max: int,
    within_s: float,
) -> None:
    async def circular_batch(events: Sequence[EventT[bytes]]) -> None:
        batch = Batch(emit, table)
        now_ns = time.time_ns()
        for event in events:
            msg = event.message
            try:
                pair = PairPayment.model_validate_json(msg.value or b"")
                key = pair_key(pair.payer_vpa, pair.payee_vpa)
                with within_event(event):
                    state = PairState.load(batch.view.get(key))
                hits = state.observe(
                    window_ms, pair.txn_id, pair.t_ms, pair.payer_vpa, pair.payee_vpa, lateness_ms
                )
                where = f"{msg.topic}~{{side}}:{msg.partition}:{msg.offset}"
                for flag in flags_for(hits, window_ms, where, now_ns):
                    value = flag.model_dump_json().encode()
                    await batch.send(by_payer, flag.user_vpa.encode(), value)
                batch.stage(event, ((key, state.dump()),))
            except Exception as exc:
                letter = internal_error(event, exc)
                batch.sent(await send_dead_letter(emit, dead_letters, letter, metrics))
        await batch.commit()

    @app.agent(by_pair, name="circular")
    async def circular(stream: StreamT[bytes]) -> None:
        await run_batches(app, "circular", stream, circular_batch, batch_max, within_s)
