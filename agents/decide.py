"""Stage 2: decide each user's events against the user's state; emit grants and decisions.

``txns-by-payer`` carries packs (``schemas.packed``) of a partition's users'
events and the fraud flags the circular stage raised on them, in one order.
Per batch of packs: each touched user's record is read once, every item is
decided by the pure core against it (``rewards.ledger``, mutating the record
in memory), the outputs are queued as they are made, and the batch commits
in the checkpoint order (``agents.checkpoint``): outputs acknowledged, then one
changelog record per touched user, then the local store, then Faust's input
offsets. An item whose feed position the user's record already covers is a
replay: skipped, nothing emitted (``Effects.replay``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import faust
from faust.types import EventT, StreamT

from agents import dead_letters
from agents.checkpoint import Checkpoint, Sender, commit_in_steps
from agents.context import StageContext, StageTopics
from agents.guard import packs_of, run_batches
from agents.metrics import Metrics
from agents.store import PartitionStore, StateCache
from rewards.ledger import Effects, Rules, apply_flag, process
from rewards.state import UserState, decode_user, encode_user, user_key
from rewards.validate import Source
from schemas.dead_letter import DeadLetter
from schemas.encode import dump_json
from schemas.flag import FraudFlag
from schemas.packed import decode_txn_pack
from schemas.routed import RoutedTransaction

#: Encoding a batch's records yields to the event loop after this much time.
_SLICE_S = 0.002


@dataclass
class _User:
    """One user's record during a batch, and the items applied to it so far."""

    partition: int
    stored: bytes | None
    state: UserState
    items: list[RoutedTransaction | FraudFlag] = field(default_factory=list)


def _apply(item: RoutedTransaction | FraudFlag, book: Rules, state: UserState) -> Effects:
    if isinstance(item, FraudFlag):
        return apply_flag(item, book, state)
    return process(item.txn, book, state, item.source)


class CommitView:
    """The records of the decide batch committing now, for readers of the store.

    A batch queues its outputs until its commit, and they are acknowledged
    before its records reach the local store (``agents.checkpoint``). So
    while it decides, nothing of it has been emitted and the store holds the
    state before it. From the start of its commit (``begin``, once every
    touched user's record is encoded, before the first output is sent) to
    the end, a reader sees the batch's records (``reader``): the state after
    every decision the batch is emitting. No reader waits.
    """

    def __init__(self) -> None:
        self._staged: Mapping[int, Mapping[bytes, bytes | None]] = {}

    def begin(self, staged: Mapping[int, Mapping[bytes, bytes | None]]) -> None:
        """A batch commits these records (partition -> key -> value, ``None`` deletes)."""
        self._staged = staged

    def end(self) -> None:
        self._staged = {}

    def reader(
        self, store: Callable[[int, bytes], bytes | None]
    ) -> Callable[[int, bytes], bytes | None]:
        """``store``'s reads, with the committing batch's records in front of it."""

        def read(partition: int, key: bytes) -> bytes | None:
            staged = self._staged.get(partition)
            if staged is not None and key in staged:
                return staged[key]
            return store(partition, key)

        return read


class DecideBatch:
    """One batch of the decide stage over ``PartitionStore``; no Faust in here."""

    def __init__(
        self,
        sender: Sender,
        store: PartitionStore,
        topics: StageTopics,
        book: Rules,
        metrics: Metrics,
        cache: StateCache | None = None,
        view: CommitView | None = None,
    ) -> None:
        self.checkpoint = Checkpoint(sender, store, metrics.timing("decide"), "decide")
        self.cache, self.view = cache, view
        self.store, self.topics, self.book, self.metrics = store, topics, book, metrics
        self.users: dict[str, _User] = {}
        self.decided: list[tuple[Effects, int]] = []
        self.packs = self.events = 0  # taken so far

    def following(self) -> DecideBatch:
        """The next batch of the same stage, once this one has committed."""
        return DecideBatch(
            self.checkpoint.sender,
            self.store,
            self.topics,
            self.book,
            self.metrics,
            self.cache,
            self.view,
        )

    def _user(self, vpa: str, partition: int) -> _User:
        user = self.users.get(vpa)
        if user is None:
            key = user_key(vpa)
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                state, stored = cached
                user = self.users[vpa] = _User(partition, stored, state)
            else:
                raw = self.store.get(partition, key)
                user = self.users[vpa] = _User(partition, raw, decode_user(raw))
        return user

    async def pack(self, partition: int, offset: int, topic: str, value: bytes | None) -> None:
        self.checkpoint.consumed(topic, partition, offset)
        self.packs += 1
        where = Source(topic, partition, offset)
        try:
            items = decode_txn_pack(value)
        except Exception as exc:  # not ours to decide: park the whole pack
            self._dead_letter(dead_letters.internal_error(where, exc, value or b""))
            return
        self.events += len(items)
        for item in items:
            self.item(partition, item)
        await asyncio.sleep(0)  # let the other stages and the heartbeats run between packs

    def item(self, partition: int, item: RoutedTransaction | FraudFlag) -> None:
        vpa = item.user_vpa if isinstance(item, FraudFlag) else item.txn.payer_vpa
        try:
            user = self._user(vpa, partition)
            effects = _apply(item, self.book, user.state)
        except Exception as exc:
            self._park(item, exc)
            self._rebuild(vpa)
            return
        user.items.append(item)
        if effects.replay:
            self.metrics.replays_skipped.inc()
            return
        key = vpa.encode()
        t = self.topics
        send = self.checkpoint.send
        for alert in effects.alerts:
            send(t.alerts, key, dump_json(alert))
        for grant in effects.grants:
            send(t.grants, key, dump_json(grant))
        if effects.decision is not None:
            send(t.decisions, key, dump_json(effects.decision))
        self.decided.append((effects, item.ingested_ns))

    def _rebuild(self, vpa: str) -> None:
        """After a failed item: the user's record as before it (the core mutates in place)."""
        user = self.users.get(vpa)
        if user is None:
            return
        state = decode_user(user.stored)
        for done in user.items:
            _apply(done, self.book, state)  # outputs already queued: only the state
        user.state = state

    def _park(self, item: RoutedTransaction | FraudFlag, exc: Exception) -> None:
        """Point the dead letter at the feed message (or the flag's pair-stream position)."""
        if isinstance(item, RoutedTransaction):
            where, raw = Source.parse(item.source), item.txn.model_dump_json().encode()
        else:
            where, raw = (
                Source.parse(item.source.replace("~lo", "").replace("~hi", "")),
                (item.model_dump_json().encode()),
            )
        self._dead_letter(dead_letters.internal_error(where, exc, raw))

    def _dead_letter(self, letter: DeadLetter) -> None:
        self.checkpoint.send(
            self.topics.dead_letters, None, dead_letters.counted(letter, self.metrics)
        )

    async def commit(self) -> None:
        """Encode every touched user's record, then commit (``agents.checkpoint``); the
        batch's ``view`` shows the records from the first send to the end."""
        view = self.view
        encoded = []
        turn = time.perf_counter() + _SLICE_S
        for vpa, user in self.users.items():
            key, value = user_key(vpa), encode_user(user.state)
            self.checkpoint.stage(user.partition, key, value)
            encoded.append((key, user.state, value))
            if time.perf_counter() > turn:  # a long batch lets the other stages and the API in
                await asyncio.sleep(0)
                turn = time.perf_counter() + _SLICE_S
        if view is not None:
            view.begin(self.checkpoint.staged)  # no await since the last record was staged
        try:
            await self.checkpoint.commit()
        finally:
            if view is not None:
                view.end()
        if self.cache is not None:
            for key, state, value in encoded:
                self.cache.put(key, state, value)
        _observe(self.metrics, self.decided)


def attach_decide(
    ctx: StageContext,
    by_payer: faust.types.TopicT,
    store: PartitionStore,
    rules: Rules | Callable[[], Rules],
    cache_users: int = 0,
    view: CommitView | None = None,
) -> None:
    app = ctx.app
    cache = StateCache(cache_users, lambda: int(app.consumer_generation_id))

    current = rules if callable(rules) else (lambda: rules)

    async def decide_batch(events: Sequence[EventT[bytes]]) -> None:
        # The versions known now, for the whole batch (a new one joins between batches).
        batch = DecideBatch(
            ctx.sender_for("decide"), store, ctx.topics, current(), ctx.metrics, cache, view
        )
        await commit_in_steps(batch, packs_of(events), ctx.batch_events)

    @app.agent(by_payer, name="decide")
    async def decide(stream: StreamT[bytes]) -> None:
        await run_batches(
            app,
            "decide",
            stream,
            decide_batch,
            ctx.batch_max,
            ctx.within_s,
            ctx.on_gap(),
            ctx.gap_probe,
        )


def _observe(metrics: Metrics, decided: list[tuple[Effects, int]]) -> None:
    """Count a batch's outcomes once per label (a labelled inc per event was ~3% of a worker)."""
    now_ns = time.time_ns()
    outcomes: Counter[str] = Counter()
    coins: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    late = 0
    newest = None
    observe = metrics.latency.observe
    for effects, ingested_ns in decided:
        for alert in effects.alerts:
            rules[alert.rule.value] += 1
        for grant in effects.grants:
            coins[grant.kind.value] += grant.coins
        late += effects.late
        decision = effects.decision
        if decision is not None:
            outcomes[decision.outcome.value] += 1
            observe(max(now_ns - ingested_ns, 0) / 1e9)
            if newest is None or decision.event_time > newest:
                newest = decision.event_time
    for outcome, n in outcomes.items():
        metrics.events.labels(outcome=outcome).inc(n)
    for kind, n in coins.items():
        metrics.coins.labels(kind=kind).inc(n)
    for rule, n in rules.items():
        metrics.fraud_alerts.labels(rule=rule).inc(n)
    if late:
        metrics.late_events.inc(late)
    metrics.saw_event_time(newest)
