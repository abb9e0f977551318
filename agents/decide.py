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
from typing import cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT, TableT, TopicT

from agents.batch import Batch
from agents.context import within_event
from agents.emit import Emitter, records_per_batch
from agents.ingest import internal_error, queue_dead_letter
from agents.metrics import Metrics
from rewards.ledger import Effects, apply_flag, process
from rewards.progress import Progress
from rewards.rulebook import RuleBook
from rewards.validate import Source
from schemas.dead_letter import DeadLetter
from schemas.flag import FraudFlag
from schemas.routed import ByPayer, RoutedPack, RoutedTransaction


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

    @app.agent(by_payer, name="decide")
    async def decide(stream: StreamT[bytes]) -> None:
        packs = cast(Stream[bytes], stream)  # records are packs of items (agents.emit.Packer)
        async for events in packs.take_events(records_per_batch(batch_max), within=within_s):
            batch = Batch(emit, table)
            decided: list[tuple[Effects, int]] = []
            progress: dict[int, tuple[EventT[bytes], Progress]] = {}
            for event in events:
                try:
                    parsed = ByPayer.validate_json(event.message.value or b"")
                except Exception as exc:
                    letter = internal_error(event, exc)
                    queue_dead_letter(batch.outbox, dead_letters, letter, metrics)
                    continue
                # A pack (schemas.routed.RoutedPack) or one item; each item as before.
                items = parsed.items if isinstance(parsed, RoutedPack) else (parsed,)
                for message in items:
                    try:
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
                        letter = _parked(event, exc, message)
                        queue_dead_letter(batch.outbox, dead_letters, letter, metrics)
                        continue
                    if isinstance(message, FraudFlag):
                        user = message.user_vpa
                    else:
                        user = message.txn.payer_vpa
                    key = user.encode()
                    for alert in effects.alerts:
                        batch.send(alerts_topic, key, alert.model_dump_json().encode())
                    for grant in effects.grants:
                        batch.send(grants_topic, key, grant.model_dump_json().encode())
                    if effects.decision is not None:
                        value = effects.decision.model_dump_json().encode()
                        batch.send(decisions_topic, key, value)
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
