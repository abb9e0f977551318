"""The whole pipeline in one process, through the pure core: for replays and tests.

Feed messages in order -> validate -> decide per payer -> circular pairs ->
flags applied to both users at once. The worker applies circular flags a
little later, on the flagged user's partition; fraud clawbacks cover the
whole held span and give cap room back, so the coins per user are the same
(docs/fraud.md). This is the "replay of the same input through the pure core"
the chaos suite and the integration tests compare a live worker with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from rewards.circular import PairState, flags_for, pair_key
from rewards.ledger import Effects, MemoryState, apply_flag, process
from rewards.rulebook import RuleBook
from rewards.validate import Source, decode
from rewards.windows import epoch_ms
from schemas.common import TxnKind, TxnStatus
from schemas.dead_letter import DeadLetter
from schemas.fraud_alert import FraudAlert
from schemas.grant import GrantKind


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


def simulate(
    messages: Iterable[bytes | None], book: RuleBook, topic: str = "upi.transactions"
) -> Simulation:
    sim = Simulation()
    pairs: dict[str, PairState] = {}
    width = book.fraud.circular_ms
    for offset, raw in enumerate(messages):
        source = Source(topic, 0, offset)
        result = decode(raw, source)
        if isinstance(result, DeadLetter):
            sim.dead_letters.append(result)
            continue
        effects = process(result, book, sim.state.user(result.payer_vpa), str(source))
        sim.effects.append(effects)
        if (
            width is None
            or result.kind is not TxnKind.PAYMENT
            or result.status is not TxnStatus.SUCCESS
        ):
            continue
        key = pair_key(result.payer_vpa, result.payee_vpa)
        pair = pairs.setdefault(key, PairState())
        t = epoch_ms(result.event_time)
        hits = pair.observe(
            width, result.txn_id, t, result.payer_vpa, result.payee_vpa, book.fraud.pair_late_ms
        )
        for flag in flags_for(hits, width, f"sim~{{side}}:0:{offset}", 0):
            sim.effects.append(apply_flag(flag, book, sim.state.user(flag.user_vpa)))
    return sim
