"""Circular transfers: A pays B and B pays A back within a window; pure.

State is keyed by the *unordered* pair, so both directions meet in one place
(``<app_id>.payments-by-pair``). A payment A->B at ``t`` breaks the rule when
some B->A payment lies in ``[t - w, t]``; both users are flagged. As in
``rewards.fraud``, an out-of-order payment re-evaluates the windows of later
payments it now completes, a payment older than the pair's newest by more than
the late allowance is late (not windowed), and the txn_id dedupes resends and
replays. The allowance is the rules' ``allowed_lateness_seconds`` when set, the
same one the payer's windows use, since the pair stream is fed from the same
interleaved feed partitions; unset, it is the circular window, as before. The
record's key and codec live in ``rewards.state`` (``pair_key``,
``encode_pair``/``decode_pair``).

>>> state, w = PairState(), 3_600_000
>>> state.observe(w, "T1", 0, "a@x", "b@x")
[]
>>> [(h.trigger, h.payer, h.payee, h.txn_ids) for h in state.observe(w, "T2", 60_000, "b@x", "a@x")]
[('T2', 'b@x', 'a@x', ('T1', 'T2'))]
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from rewards.state import pair_key
from schemas.flag import FraudFlag, Violation
from schemas.fraud_alert import FraudRule

__all__ = ["PairHit", "PairState", "flags_for", "pair_key"]


@dataclass(frozen=True, slots=True)
class PairHit:
    trigger: str
    t: int
    payer: str
    payee: str
    txn_ids: tuple[str, ...]


@dataclass(slots=True)
class PairState:
    newest: int | None = None
    #: (t, txn_id, forward) sorted; forward means paid by the lexically lower VPA.
    seen: list[tuple[int, str, bool]] = field(default_factory=list)

    def observe(
        self,
        width: int,
        txn: str,
        t: int,
        payer: str,
        payee: str,
        lateness: int | None = None,
    ) -> list[PairHit]:
        """Add one payment of the pair; return the windows it makes break the rule.

        ``lateness`` is ``FraudConfig.pair_late_ms``; None means the window, the
        allowance before it was configurable (and the doctest's shorthand).
        """
        allowance = width if lateness is None else lateness
        if payer == payee:
            return []
        seen = self.seen  # a pair holds a few payments: plain loops beat generators here
        for s in seen:
            if s[1] == txn:
                return []
        newest = self.newest
        if newest is not None and t < newest - allowance:
            return []  # late: not windowed (docs/fraud.md)
        lo, hi = (payer, payee) if payer <= payee else (payee, payer)
        forward = payer == lo
        entry = (t, txn, forward)
        bisect.insort(seen, entry)
        newest = self.newest = t if newest is None or t > newest else newest
        hits: list[PairHit] = []
        for s in seen:
            if s[2] != forward:
                break
        else:  # one direction only: no window has a reverse payment, nothing to scan
            seen = []
        times = [s[0] for s in seen]
        first, last = bisect.bisect_left(times, t), bisect.bisect_right(times, t + width)
        for end in seen[first:last]:
            # ``end == entry``, not ``is``: compiled (mypyc), a tuple is unboxed and
            # reboxed, so it has no identity; equal means the same payment (txn ids are
            # unique in ``seen``, checked above).
            own = end == entry
            if not own and end[2] == forward:
                continue
            start, stop = (
                bisect.bisect_left(times, end[0] - width),
                bisect.bisect_right(times, end[0]),
            )
            window = seen[start:stop]
            back = [s for s in window if s[2] != end[2]]
            # Its own window counts when any reverse payment is in it; a later
            # payment's only when this one is the reverse payment that completes it.
            completes = bool(back) if own else back == [entry]
            if completes:
                end_payer, end_payee = (lo, hi) if end[2] else (hi, lo)
                hits.append(
                    PairHit(end[1], end[0], end_payer, end_payee, tuple(s[1] for s in window))
                )
        # A window may end as far back as the allowance and reaches one window
        # further back; keep exactly that, so a late-but-allowed payment sees it all.
        floor = newest - allowance - width
        if self.seen[0][0] < floor:  # sorted by time: drop the head
            del self.seen[: bisect.bisect_left(self.seen, (floor,))]
        return hits


def flags_for(hits: list[PairHit], window_ms: int, where: str, now_ns: int) -> list[FraudFlag]:
    """Bundle one pair message's hits into one flag per flagged user.

    ``where`` is the pair message's position with a ``{side}`` placeholder,
    e.g. ``pairs~{side}:3:1200``: each user of the pair gets its own progress
    path (``lo``/``hi``), so the decide stage, which needs increasing offsets
    per path, can tell a replayed flag from a new one.
    """
    per_user: dict[str, list[Violation]] = {}
    for hit in hits:
        violation = Violation(
            rule=FraudRule.CIRCULAR,
            trigger_txn_id=hit.trigger,
            t_ms=hit.t,
            window_ms=window_ms,
            txn_ids=hit.txn_ids,
        )
        for user in (hit.payer, hit.payee):
            per_user.setdefault(user, []).append(violation)
    lo = min(per_user, default="")
    return [
        FraudFlag(
            user_vpa=user,
            violations=tuple(violations),
            source=where.format(side="lo" if user == lo else "hi"),
            ingested_ns=now_ns,
        )
        for user, violations in sorted(per_user.items())
    ]
