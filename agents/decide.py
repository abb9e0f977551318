"""Stage 2: decide each re-keyed event against the user's state; emit grants and decisions.

Per batch: decide every event (reads see the batch's own earlier writes), send
its grants and decision, wait until the broker acknowledges all of them, and
only then write the state and the progress marks (``rewards.progress``). A
crash before the writes replays the batch against unchanged state,
re-emitting the same grants with the same ids; a replay after them is
recognised by the marks and skipped. An output can be repeated, never lost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT, TableT, TopicT

from agents.context import within_event
from agents.emit import Emitter
from agents.ingest import internal_error, send_dead_letter
from agents.metrics import Metrics
from rewards.ledger import Effects, process
from rewards.progress import Progress
from rewards.rulebook import RuleBook
from rewards.validate import Source
from schemas.routed import RoutedTransaction


class BatchView:
    """The state as seen mid-batch: this batch's pending writes over the table."""

    def __init__(self, table: TableT[bytes, bytes]) -> None:
        self._table = table
        self.pending: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        value = self.pending.get(key)
        if value is not None:
            return value
        stored: bytes | None = self._table.get(key.encode())
        return stored


def attach_decide(
    app: faust.App,
    emit: Emitter,
    by_payer: TopicT,
    table: TableT[bytes, bytes],
    grants_topic: TopicT,
    decisions_topic: TopicT,
    dead_letters: TopicT,
    book: RuleBook,
    metrics: Metrics,
    batch_max: int,
    within_s: float,
) -> None:
    @app.agent(by_payer, name="decide")
    async def decide(stream: StreamT[bytes]) -> None:
        async for events in cast(Stream[bytes], stream).take_events(batch_max, within=within_s):
            view = BatchView(table)
            writes: list[tuple[EventT[bytes], str, bytes]] = []
            sent: list[Any] = []
            decided: list[tuple[Effects, int]] = []
            progress: dict[int, tuple[EventT[bytes], Progress]] = {}
            for event in events:
                routed: RoutedTransaction | None = None
                try:
                    routed = RoutedTransaction.model_validate_json(event.message.value or b"")
                    partition = event.message.partition
                    if partition not in progress:
                        with within_event(event):
                            raw = table.get(progress_key(partition))
                        progress[partition] = (event, Progress(raw))
                    marks = progress[partition][1]
                    if marks.done(routed.source):
                        metrics.replays_skipped.inc()
                        continue
                    marks.finish(routed.source)
                    with within_event(event):
                        effects = process(routed.txn, book, view, routed.source)
                except Exception as exc:
                    letter = (
                        internal_error(event, exc)
                        if routed is None
                        else internal_error(
                            event,
                            exc,
                            Source.parse(routed.source),
                            routed.txn.model_dump_json().encode(),
                        )
                    )
                    sent.append(await send_dead_letter(emit, dead_letters, letter, metrics))
                    continue
                key = routed.txn.payer_vpa.encode()
                for grant in effects.grants:
                    sent.append(
                        await emit.send(grants_topic, key, grant.model_dump_json().encode())
                    )
                sent.append(
                    await emit.send(
                        decisions_topic, key, effects.decision.model_dump_json().encode()
                    )
                )
                for state_key, value in effects.writes:
                    view.pending[state_key] = value
                    writes.append((event, state_key, value))
                decided.append((effects, routed.ingested_ns))
            # Outputs first: nothing is marked done before the broker has it.
            await asyncio.gather(*sent)
            for event, state_key, value in writes:
                with within_event(event):
                    table[state_key.encode()] = value
            for partition, (event, marks) in progress.items():
                if marks.changed:
                    with within_event(event):
                        table[progress_key(partition)] = marks.dump()
            _observe(metrics, decided)


def progress_key(partition: int) -> bytes:
    """Per decide partition; the NUL prefix keeps it apart from user keys (VPAs)."""
    return f"\x00progress\x00{partition}".encode()


def _observe(metrics: Metrics, decided: list[tuple[Effects, int]]) -> None:
    now_ns = time.time_ns()
    for effects, ingested_ns in decided:
        metrics.events.labels(outcome=effects.decision.outcome.value).inc()
        for grant in effects.grants:
            metrics.coins.labels(kind=grant.kind.value).inc(grant.coins)
        metrics.latency.observe(max(now_ns - ingested_ns, 0) / 1e9)
