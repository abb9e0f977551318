"""What the per-user API answers: a pure function of one stored ``UserState``.

``rewards_answer(vpa, state, book, at)`` says how many coins the user can
still earn on the day and in the month of ``at`` (calendar of the rules'
timezone), and whether a fraud hold covers ``at``; ``payment_answer`` says
what one payment earned, what was refunded and clawed back. ``state`` is
``None`` for a user the state has never seen. No I/O, no clock: the caller
passes ``at``.

The counters are the ones the caps read (``UserState.days``/``months``):
refund clawbacks give no room back, fraud clawbacks do (docs/contracts.md).
"""

from __future__ import annotations

from datetime import date, datetime

from rewards.calendar import day_and_month
from rewards.ledger import CAP_HORIZON_DAYS
from rewards.rulebook import RuleBook
from rewards.state import Payment, UserState
from rewards.windows import Spans, epoch_ms, from_ms
from schemas.api import (
    DayRoom,
    Hold,
    MonthRoom,
    NotFoundReason,
    PaymentAnswer,
    PaymentNotFound,
    PaymentOutcome,
    RewardsAnswer,
)
from schemas.fraud_alert import FraudRule


def _room(cap: int | None, granted: int) -> int | None:
    return None if cap is None else max(0, cap - granted)


def hold_at(state: UserState, t_ms: int) -> tuple[list[FraudRule], int | None]:
    """The rules whose hold covers ``t_ms`` (sorted) and the latest end of those holds."""
    rules: list[FraudRule] = []
    until: int | None = None
    for rule, items in state.fraud.hold.items():
        span = Spans(items).covering(t_ms)
        if span is not None:
            rules.append(FraudRule(rule))
            until = span[1] if until is None else max(until, span[1])
    return sorted(rules), until


def newest_payment_ms(state: UserState) -> int | None:
    """Event time of the newest payment the state holds (refunds keep no time)."""
    times = [rec.t for rec in state.txns.values() if type(rec) is Payment]
    return max(times) if times else None


def rewards_answer(
    vpa: str, state: UserState | None, book: RuleBook, at: datetime
) -> RewardsAnswer:
    """The ``/rewards`` answer for ``vpa`` (lowercase) at ``at`` (aware)."""
    tz = book.tz
    known = state is not None
    user = state if state is not None else UserState()
    day, month = day_and_month(at, tz)
    local = at.astimezone(tz)
    day_coins = user.days.get(day, 0)
    month_coins = user.months.get(month, 0)
    rules, until = hold_at(user, epoch_ms(at))
    newest = newest_payment_ms(user)
    return RewardsAnswer(
        user_vpa=vpa,
        known=known,
        rules_version=book.version,
        at=local,
        day=DayRoom(
            date=local.date().isoformat(),
            coins_granted=day_coins,
            cap=book.daily_cap,
            room=_room(book.daily_cap, day_coins),
        ),
        month=MonthRoom(
            month=f"{local.year:04d}-{local.month:02d}",
            coins_granted=month_coins,
            cap=book.monthly_cap,
            room=_room(book.monthly_cap, month_coins),
        ),
        hold=Hold(
            active=bool(rules),
            until=None if until is None else from_ms(until).astimezone(tz),
            rules=rules,
        ),
        newest_event_time=None if newest is None else from_ms(newest).astimezone(tz),
    )


def payment_answer(
    vpa: str, state: UserState | None, book: RuleBook, txn_id: str
) -> PaymentAnswer | PaymentNotFound:
    """The ``/payments/{txn_id}`` answer, or why the state holds no such payment.

    ``outcome``: ``GRANTED`` when the payment earned coins (whatever was
    clawed back since), else ``FRAUD_HOLD`` when a fraud hold covers its
    time, else ``NO_REWARD``. ``rules``: its GRANT's coins per rule (empty
    for a payment recorded before the state kept them). Not found: the
    reason is ``never_seen`` only while the state dropped none of the user's
    records (``UserState.forgot``), else ``not_in_state`` (never seen, or
    beyond the horizon: the state cannot tell).
    """
    if state is None:
        return PaymentNotFound(reason=NotFoundReason.UNKNOWN_USER, state_horizon_from=None)
    rec = state.txns.get(txn_id)
    if type(rec) is not Payment:
        horizon = date.fromordinal(max(state.newest_day - CAP_HORIZON_DAYS, 1)).isoformat()
        if rec is not None:
            reason = NotFoundReason.NOT_A_PAYMENT
        elif state.forgot:
            reason = NotFoundReason.NOT_IN_STATE
        else:
            reason = NotFoundReason.NEVER_SEEN
        return PaymentNotFound(reason=reason, state_horizon_from=horizon)
    held, _ = hold_at(state, rec.t)
    if rec.granted > 0:
        outcome = PaymentOutcome.GRANTED
    elif held:
        outcome = PaymentOutcome.FRAUD_HOLD
    else:
        outcome = PaymentOutcome.NO_REWARD
    return PaymentAnswer(
        txn_id=txn_id,
        user_vpa=vpa,
        outcome=outcome,
        amount_paise=rec.amount,
        refunded_paise=rec.refunded,
        coins_granted=rec.granted,
        coins_clawed_back=rec.clawed,
        rules=list(rec.rules),
        hold_rules=held,
        event_time=from_ms(rec.t).astimezone(book.tz),
    )
