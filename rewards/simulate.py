"""The whole pipeline in one process, through the pure core: for replays and tests.

Feed messages in order -> validate -> decide per payer -> circular pairs ->
flags applied to both users at once. The worker applies circular flags a
little later, on the flagged user's partition; fraud clawbacks cover the
whole held span and give cap room back, so the coins per user are the same
(docs/fraud.md). This is the "replay of the same input through the pure core"
the chaos suite and the integration tests compare a live worker with.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rewards.circular import PairState, flags_for, pair_key
from rewards.ledger import Effects, MemoryState, Rules, apply_flag, process
from rewards.validate import Source, decode
from rewards.windows import epoch_ms
from schemas.common import TxnKind, TxnStatus
from schemas.dead_letter import DeadLetter
from schemas.fraud_alert import FraudAlert
from schemas.grant import GrantKind
from schemas.transaction import Transaction


@dataclass
class Simulation:
    effects: list[Effects] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    state: MemoryState = field(default_factory=MemoryState)

    @property
    def alerts(self) -> list[FraudAlert]:
        return [a for e in self.effects for a in e.alerts]

    def balances(self) -> dict[str, int]:
        """Coins granted minus coins clawed back, per user."""
        out: dict[str, int] = {}
        for effects in self.effects:
            for g in effects.grants:
                sign = 1 if g.kind is GrantKind.GRANT else -1
                out[g.user_vpa] = out.get(g.user_vpa, 0) + sign * g.coins
        return out


def decode_feed(
    messages: Iterable[bytes | None], topic: str = "upi.transactions"
) -> Iterator[Transaction | DeadLetter]:
    """Validate feed messages in order, as the ingest edge does (offsets from 0)."""
    for offset, raw in enumerate(messages):
        yield decode(raw, Source(topic, 0, offset))


def simulate(
    messages: Iterable[bytes | None], book: Rules, topic: str = "upi.transactions"
) -> Simulation:
    return simulate_decoded(decode_feed(messages, topic), book, topic)


def simulate_decoded(
    items: Iterable[Transaction | DeadLetter],
    book: Rules,
    topic: str = "upi.transactions",
    marks: bool = True,
) -> Simulation:
    """``simulate`` over messages validated already (``decode_feed``): one decode, many runs.

    ``marks=False``: no replay marks in the users' state (each message is seen
    once here, so the outputs are the same; a backtest keeps no state).
    """
    sim = Simulation()
    pairs: dict[str, PairState] = {}
    width = book.fraud.circular_ms
    users, effects, dead_letters = sim.state, sim.effects, sim.dead_letters
    pair_late_ms = book.fraud.pair_late_ms
    payment, success = TxnKind.PAYMENT, TxnStatus.SUCCESS
    with _no_cyclic_gc():
        for offset, result in enumerate(items):
            if type(result) is DeadLetter:
                dead_letters.append(result)
                continue
            assert isinstance(result, Transaction)
            payer = result.payer_vpa
            source = f"{topic}:0:{offset}" if marks else ""
            effects.append(process(result, book, users.user(payer), source))
            if width is None or result.kind is not payment or result.status is not success:
                continue
            key = pair_key(payer, result.payee_vpa)
            pair = pairs.get(key)
            if pair is None:
                pair = pairs[key] = PairState()
            t = epoch_ms(result.event_time)
            hits = pair.observe(width, result.txn_id, t, payer, result.payee_vpa, pair_late_ms)
            if not hits:
                continue
            for flag in flags_for(hits, width, f"sim~{{side}}:0:{offset}", 0):
                effects.append(apply_flag(flag, book, users.user(flag.user_vpa)))
    return sim


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a run, restoring it after.

    The core makes no reference cycles (refcounting frees everything; checked:
    ``gc.collect()`` after a 20,000-event run finds nothing), but a run keeps
    every output alive, and the collector's repeated passes over that growing
    heap cost about a quarter of the run's time. At the end the run's objects
    are handed to the oldest generation unexamined (``freeze`` + ``unfreeze``
    moves every tracked object there without a pass): otherwise the first
    allocation after ``enable`` would scan them all once more (15% of a run,
    py-spy). Cycles among them, if any, are still found by the next full
    collection.
    """
    was_enabled = gc.isenabled()
    frozen_by_caller = gc.get_freeze_count() > 0
    gc.disable()
    try:
        yield
    finally:
        if not frozen_by_caller:  # never thaw what the caller froze on purpose
            gc.freeze()
            gc.unfreeze()
        if was_enabled:
            gc.enable()
