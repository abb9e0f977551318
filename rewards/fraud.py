"""Reward-farming detectors over one user's payments, in event time; pure.

Two detectors run on the payer's own partition, synchronously with the
decision: **velocity** (more than N payments in any window) and **same_payee**
(more than N to one payee). The third, **circular**, needs both users of a
pair and lives in ``rewards.circular``; its verdicts come back here as flags.

Semantics (docs/fraud.md): only SUCCESS PAYMENTs count; windows are closed,
``[t - w, t]``, and evaluated at every payment *as its end*. An event arriving
out of order is inserted where it belongs, so windows ending at later payments
are re-evaluated; a window that already broke the rule before this event is
not reported again. An event older than the user's newest by more than the
late allowance (``allowed_lateness_seconds``, by default the largest payer
window) is *late*: decided, but kept out of the windows.

A violation either raises an alert (no cooldown of its rule covers its time)
or extends that cooldown. Either way it places a *hold* over
``[t - w, max(t + cooldown, t + 1))``: payments there earn nothing, and grants
already made for payments there are clawed back, so the result does not
depend on whether a payment was decided before or after its flag arrived.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from rewards.windows import Spans
from schemas.fraud_alert import FraudRule
from schemas.rules import FraudRules

#: Spans of holds/cooldowns are kept this long behind the user's newest event
#: (the cap horizon): a late payment further back earns nothing anyway.
SPAN_HORIZON_MS = 62 * 24 * 3600 * 1000
_VELOCITY = FraudRule.VELOCITY


@dataclass(frozen=True, slots=True)
class FraudConfig:
    """The rules file's ``fraud`` section in milliseconds.

    ``local_ms``, ``local_rules`` and the allowances are derived once here
    because they are read on every payment.
    """

    velocity: tuple[int, int] | None = None  # (max_payments, window_ms)
    same_payee: tuple[int, int] | None = None
    circular_ms: int | None = None
    cooldown_ms: int = 86_400_000
    #: ``allowed_lateness_seconds`` in ms; None keeps each state's own widest
    #: window as its allowance, the behaviour before the setting existed.
    lateness_ms: int | None = None
    #: The widest window evaluated on the payer's partition.
    local_ms: int = field(init=False, default=0)
    #: (rule, max_payments, window_ms) of the windows evaluated on the payer's partition.
    local_rules: tuple[tuple[FraudRule, int, int], ...] = field(init=False, default=())
    #: How far behind the payer's newest payment a payment is still windowed.
    late_ms: int = field(init=False, default=0)
    #: The same for a pair's newest payment (the circular detector).
    pair_late_ms: int = field(init=False, default=0)
    #: How far behind the payer's newest payment ``FraudState.seen`` reaches.
    seen_ms: int = field(init=False, default=0)
    #: Any detector configured (read on every payment, so a field).
    enabled: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        rules: list[tuple[FraudRule, int, int]] = []
        if self.velocity:
            rules.append((FraudRule.VELOCITY, *self.velocity))
        if self.same_payee:
            rules.append((FraudRule.SAME_PAYEE, *self.same_payee))
        local_ms = max((r[2] for r in rules), default=0)
        object.__setattr__(self, "local_rules", tuple(rules))
        object.__setattr__(self, "local_ms", local_ms)
        given = self.lateness_ms
        object.__setattr__(self, "late_ms", local_ms if given is None else given)
        pair_default = self.circular_ms or 0
        object.__setattr__(self, "pair_late_ms", pair_default if given is None else given)
        # A window may end as far back as the allowance and reaches one window
        # further back from there; with no payer windows nothing needs keeping.
        object.__setattr__(self, "seen_ms", self.late_ms + local_ms if rules else 0)
        enabled = bool(self.velocity or self.same_payee or self.circular_ms)
        object.__setattr__(self, "enabled", enabled)

    @classmethod
    def from_rules(cls, rules: FraudRules) -> FraudConfig:
        def limit(section: Any) -> tuple[int, int] | None:
            if section is None:
                return None
            return section.max_payments, section.window_seconds * 1000

        return cls(
            velocity=limit(rules.velocity),
            same_payee=limit(rules.same_payee),
            circular_ms=rules.circular.window_seconds * 1000 if rules.circular else None,
            cooldown_ms=rules.cooldown_seconds * 1000,
            lateness_ms=(
                None
                if rules.allowed_lateness_seconds is None
                else rules.allowed_lateness_seconds * 1000
            ),
        )


@dataclass(frozen=True, slots=True)
class Hit:
    """A window that breaks a rule, ending at payment ``trigger`` (time ``t``)."""

    rule: FraudRule
    trigger: str
    t: int
    window_ms: int
    txn_ids: tuple[str, ...]


@dataclass(slots=True)
class FraudState:
    """One user's windows, cooldowns and holds; part of ``rewards.state.UserState``."""

    newest: int | None = None
    seen: list[list[Any]] = field(default_factory=list)  # [t, txn, payee], sorted
    cool: dict[str, list[list[int]]] = field(default_factory=dict)
    hold: dict[str, list[list[int]]] = field(default_factory=dict)

    def is_late(self, t: int, cfg: FraudConfig) -> bool:
        """Too old for the payer's windows (the pair's windows judge on their own)."""
        return self.newest is not None and t < self.newest - cfg.late_ms

    def observe(self, cfg: FraudConfig, txn: str, t: int, payee: str) -> list[Hit]:
        """Add one (not late) payment and return the windows it makes break a rule."""
        bisect.insort(self.seen, [t, txn, payee])
        if self.newest is None or t > self.newest:
            self.newest = t
        hits: list[Hit] = []
        seen = self.seen
        for rule, limit, width in cfg.local_rules:
            if len(seen) <= limit:
                continue  # no window can hold more than the limit: nothing to scan
            # Only windows ending in [t, t + width] can change, and none reaches
            # back beyond t - width: scanning just that slice keeps the cost per
            # payment independent of the late allowance (a day of the demo
            # feed's heaviest payer is ~500 entries; scanning them all made
            # this function ~45% slower with a 1-day allowance, cProfile).
            lo_near = bisect.bisect_left(seen, [t - width])
            hi_near = bisect.bisect_left(seen, [t + width + 1], lo_near)
            if hi_near - lo_near <= limit:
                continue
            near = seen[lo_near:hi_near]
            pool = near if rule is _VELOCITY else [s for s in near if s[2] == payee]
            times = [s[0] for s in pool]
            first_end = bisect.bisect_left(times, t)
            last_end = bisect.bisect_right(times, t + width)
            for end_t, end_txn, _ in pool[first_end:last_end]:
                lo = bisect.bisect_left(times, end_t - width)
                hi = bisect.bisect_right(times, end_t)
                count = hi - lo
                # The new payment's own window counts when over the limit; a later
                # window only when this payment is what pushed it over.
                own = end_txn == txn
                if (own and count > limit) or (not own and count == limit + 1):
                    ids = tuple(s[1] for s in pool[lo:hi])
                    hits.append(Hit(rule, end_txn, end_t, width, ids))
        return hits

    def flag(self, cfg: FraudConfig, hit: Hit) -> tuple[bool, int, tuple[int, int]]:
        """Apply a hit: (raises an alert?, cooldown_until, the hold span now covering it)."""
        cool = Spans(self.cool.setdefault(hit.rule.value, []))
        covered = cool.covering(hit.t) is not None
        until = cool.add(hit.t, hit.t + cfg.cooldown_ms)[1] if cfg.cooldown_ms else hit.t
        self.cool[hit.rule.value] = cool.items
        hold = Spans(self.hold.setdefault(hit.rule.value, []))
        span = hold.add(hit.t - hit.window_ms, max(hit.t + cfg.cooldown_ms, hit.t + 1))
        self.hold[hit.rule.value] = hold.items
        return not covered, until, span

    def held_by(self, t: int) -> list[FraudRule]:
        """The rules whose holds cover a payment at ``t`` (empty: it may earn)."""
        return [FraudRule(rule) for rule, items in self.hold.items() if Spans(items).covering(t)]

    def prune(self, cfg: FraudConfig) -> None:
        """Forget what no future window, flag or late event can use: bounded state."""
        if self.newest is None:
            return
        # Keeping less than ``seen_ms`` would let a late-but-allowed burst be
        # counted against a window already partly forgotten (FraudConfig).
        floor = self.newest - cfg.seen_ms
        seen = self.seen
        if seen and seen[0][0] < floor:  # sorted by time: drop the head, in place
            del seen[: bisect.bisect_left(seen, [floor])]
        if not (self.cool or self.hold):
            return
        span_floor = self.newest - SPAN_HORIZON_MS
        for spans in (self.cool, self.hold):
            for rule, items in list(spans.items()):
                kept = Spans(items)
                kept.prune(span_floor)
                if kept.items:
                    spans[rule] = kept.items
                else:
                    del spans[rule]
