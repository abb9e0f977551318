"""Stage 2: decide each re-keyed event against the user's state; emit grants and decisions.

The stream carries a user's events and the fraud flags raised on that user by
the circular stage, in one order. Per batch (``agents.batch``): decide every
message, send its outputs, wait until the broker acknowledges all of them, and
only then write the state and the progress marks (``rewards.progress``). A
replay after the writes is recognised by the marks and skipped; before them,
it repeats the same outputs with the same ids. An output can be repeated,
never lost.
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
from rewards.ledger import Effects, apply_flag, process
from rewards.progress import Progress
from rewards.rulebook import RuleBook
from rewards.validate import Source
from schemas.dead_letter import DeadLetter
from schemas.flag import FraudFlag
from schemas.routed import ByPayer, RoutedTransaction


def attach_decide(
    app: faust.App,
    emit: Emitter,
    by_payer: TopicT,
    table: TableT[bytes, bytes],
    outputs: dict[str, TopicT],
    book: RuleBook,
    metrics: Metrics,
    batch_max: int,
    within_s: float,
) -> None:
    grants_topic, decisions_topic = outputs["grants"], outputs["decisions"]
    alerts_topic, dead_letters = outputs["alerts"], outputs["dead_letters"]

    async def decide_batch(events: Sequence[EventT[bytes]]) -> None:
        batch = Batch(emit, table)
        decided: list[tuple[Effects, int]] = []
        progress: dict[int, tuple[EventT[bytes], Progress]] = {}
        for event in events:
            message: RoutedTransaction | FraudFlag | None = None
            try:
                message = ByPayer.validate_json(event.message.value or b"")
                partition = event.message.partition
                if partition not in progress:
                    with within_event(event):
                        raw = table.get(progress_key(partition))
                    progress[partition] = (event, Progress(raw))
                marks = progress[partition][1]
                if marks.done(message.source):
                    metrics.replays_skipped.inc()
                    continue
                marks.finish(message.source)
                with within_event(event):
                    if isinstance(message, FraudFlag):
                        effects = apply_flag(message, book, batch.view)
                    else:
                        effects = process(message.txn, book, batch.view, message.source)
            except Exception as exc:
                batch.sent(
                    await send_dead_letter(
                        emit, dead_letters, _parked(event, exc, message), metrics
                    )
                )
                continue
            user = message.user_vpa if isinstance(message, FraudFlag) else message.txn.payer_vpa
            key = user.encode()
            for alert in effects.alerts:
                await batch.send(alerts_topic, key, alert.model_dump_json().encode())
            for grant in effects.grants:
                await batch.send(grants_topic, key, grant.model_dump_json().encode())
            if effects.decision is not None:
                await batch.send(decisions_topic, key, effects.decision.model_dump_json().encode())
            batch.stage(event, effects.writes)
            decided.append((effects, message.ingested_ns))
        # Outputs first: nothing is marked done before the broker has it.
        await batch.commit(
            [
                (event, progress_key(partition), marks.dump())
                for partition, (event, marks) in progress.items()
                if marks.changed
            ]
        )
        _observe(metrics, decided)

    @app.agent(by_payer, name="decide")
    async def decide(stream: StreamT[bytes]) -> None:
        await run_batches(app, "decide", stream, decide_batch, batch_max, within_s)


def _parked(
    event: EventT[bytes], exc: Exception, message: RoutedTransaction | FraudFlag | None
) -> DeadLetter:
    """Point the dead letter at the feed message when the envelope was readable."""
    if isinstance(message, RoutedTransaction):
        raw = message.txn.model_dump_json().encode()
        return internal_error(event, exc, Source.parse(message.source), raw)
    return internal_error(event, exc)


def progress_key(partition: int) -> bytes:
    """Per decide partition; the NUL prefix keeps it apart from user keys (VPAs)."""
    return f"\x00progress\x00{partition}".encode()


def _observe(metrics: Metrics, decided: list[tuple[Effects, int]]) -> None:
    now_ns = time.time_ns()
    for effects, ingested_ns in decided:
        for alert in effects.alerts:
            metrics.fraud_alerts.labels(rule=alert.rule.value).inc()
        for grant in effects.grants:
            metrics.coins.labels(kind=grant.kind.value).inc(grant.coins)
        if effects.late:
            metrics.late_events.inc()
        if effects.decision is not None:
            metrics.events.labels(outcome=effects.decision.outcome.value).inc()
            metrics.latency.observe(max(now_ns - ingested_ns, 0) / 1e9)
    metrics.saw_event_time(
        max((e.decision.event_time for e, _ in decided if e.decision is not None), default=None)
    )
