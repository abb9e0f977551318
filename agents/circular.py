"""Stage 2b: circular transfers, on packs of payments keyed by the unordered pair.

Thin adapter over ``rewards.circular``. A hit flags both users of the pair: the
flags go back to ``txns-by-payer`` as packs, one per partition of the flagged
users, where the decide stage applies them in order with the users' own
events (alert, hold, clawback). Each flag's source is its pair-stream position
(``<topic>~lo|hi:<partition>:<pack offset × PACK_SLOTS + item>``), increasing
per partition, so the user's replay marks recognise a replayed flag.
Same checkpoint order as decide (``agents.checkpoint``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import faust
from faust.types import EventT, StreamT

from agents import dead_letters
from agents.checkpoint import Checkpoint, Sender, commit_in_steps
from agents.context import StageContext, StageTopics
from agents.guard import packs_of, run_batches
from agents.metrics import Metrics
from agents.partitioning import Partitioner
from agents.store import PartitionStore
from rewards.circular import PairHit, PairState, flags_for, pair_key
from rewards.state import decode_pair, encode_pair
from rewards.validate import Source
from schemas.dead_letter import DeadLetter
from schemas.encode import dump_json
from schemas.flag import PairPayment
from schemas.packed import PACK_SLOTS, decode_pair_pack, encode_packs


class CircularBatch:
    def __init__(
        self,
        sender: Sender,
        store: PartitionStore,
        topics: StageTopics,
        partitioner: Partitioner,
        window_ms: int,
        lateness_ms: int,
        metrics: Metrics,
    ) -> None:
        self.checkpoint = Checkpoint(sender, store, metrics.timing("circular"), "circular")
        self.store, self.partitioner = store, partitioner
        self.by_payer, self.dead_letter_topic = topics.by_payer, topics.dead_letters
        self.window_ms, self.lateness_ms, self.metrics = window_ms, lateness_ms, metrics
        self.pairs: dict[str, tuple[int, PairState]] = {}
        self.applied: dict[str, list[PairPayment]] = {}
        self.flags: dict[int, list[bytes]] = {}
        self.now_ns = time.time_ns()
        self.packs = self.events = 0  # taken so far
        self._args = (sender, store, topics, partitioner, window_ms, lateness_ms, metrics)

    def following(self) -> CircularBatch:
        """The next batch of the stage, once this one has committed."""
        return CircularBatch(*self._args)

    async def pack(self, partition: int, offset: int, topic: str, value: bytes | None) -> None:
        self.checkpoint.consumed(topic, partition, offset)
        self.packs += 1
        try:
            items = decode_pair_pack(value)
        except Exception as exc:
            letter = dead_letters.internal_error(
                Source(topic, partition, offset), exc, value or b""
            )
            self._dead_letter(letter)
            return
        self.events += len(items)
        for i, pair in enumerate(items):
            key = pair_key(pair.payer_vpa, pair.payee_vpa)
            try:
                found = self.pairs.get(key)
                if found is None:
                    found = (partition, decode_pair(self.store.get(partition, key.encode())))
                    self.pairs[key] = found
                state = found[1]
                hits = self._observe(state, pair)
            except Exception as exc:
                where = Source.parse(pair.source)
                self._dead_letter(
                    dead_letters.internal_error(where, exc, pair.model_dump_json().encode())
                )
                self._rebuild(key, partition)  # observe may have half-run
                continue
            self.applied.setdefault(key, []).append(pair)
            position = f"{topic}~{{side}}:{partition}:{offset * PACK_SLOTS + i}"
            for flag in flags_for(hits, self.window_ms, position, self.now_ns):
                target = self.partitioner(flag.user_vpa.encode())
                self.flags.setdefault(target, []).append(dump_json(flag))
        await asyncio.sleep(0)  # let the other stages and the heartbeats run between packs

    def _observe(self, state: PairState, pair: PairPayment) -> list[PairHit]:
        return state.observe(
            self.window_ms, pair.txn_id, pair.t_ms, pair.payer_vpa, pair.payee_vpa, self.lateness_ms
        )

    def _rebuild(self, key: str, partition: int) -> None:
        """The pair's record as before the failed item (its flags are already queued)."""
        state = decode_pair(self.store.get(partition, key.encode()))
        for done in self.applied.get(key, []):
            self._observe(state, done)
        self.pairs[key] = (partition, state)

    def _dead_letter(self, letter: DeadLetter) -> None:
        value = dead_letters.counted(letter, self.metrics)
        self.checkpoint.send(self.dead_letter_topic, None, value)

    async def commit(self) -> None:
        for partition, items in self.flags.items():
            for pack in encode_packs(items):
                self.checkpoint.send(self.by_payer, None, pack, partition)
        for key, (partition, state) in self.pairs.items():
            self.checkpoint.stage(partition, key.encode(), encode_pair(state))
        await self.checkpoint.commit()


def attach_circular(
    ctx: StageContext,
    by_pair: faust.types.TopicT,
    store: PartitionStore,
    window_ms: int,
    lateness_ms: int,
) -> None:
    partitioner = Partitioner(ctx.partitions)

    async def circular_batch(events: Sequence[EventT[bytes]]) -> None:
        batch = CircularBatch(
            ctx.sender_for("circular"),
            store,
            ctx.topics,
            partitioner,
            window_ms,
            lateness_ms,
            ctx.metrics,
        )
        await commit_in_steps(batch, packs_of(events), ctx.batch_events)

    app = ctx.app

    @app.agent(by_pair, name="circular")
    async def circular(stream: StreamT[bytes]) -> None:
        await run_batches(
            app,
            "circular",
            stream,
            circular_batch,
            ctx.batch_max,
            ctx.within_s,
            ctx.on_gap(),
            ctx.gap_probe,
        )
