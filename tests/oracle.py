"""An independent, deliberately naive reading of the reward spec (issue 3 §2).

No code shared with ``rewards.ledger``: plain lists, caps recomputed by summing
every grant so far, refunds by scanning. Slow and obviously right, it is the
yardstick for the core (unit properties) and for a live worker (integration).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from schemas.rules import RulesFile
from schemas.transaction import Transaction


@dataclass(frozen=True)
class ExpectedGrant:
    grant_id: str
    kind: str  # GRANT | CLAWBACK
    user_vpa: str
    coins: int
    txn_id: str
    cause_txn_id: str
    rules: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ExpectedDecision:
    txn_id: str
    user_vpa: str
    outcome: str
    coins: int
    grants: tuple[ExpectedGrant, ...] = ()


@dataclass
class _Payment:
    amount: int
    granted: int
    refunded: int = 0
    clawed: int = 0


@dataclass
class _User:
    succeeded: set[str] = field(default_factory=set)
    payments: dict[str, _Payment] = field(default_factory=dict)
    grants: list[tuple[object, object, int]] = field(default_factory=list)  # (day, month, coins)


def _rule_coins(txn: Transaction, rules: RulesFile) -> list[tuple[str, int]]:
    out = []
    for rule in rules.rules:
        m = rule.match
        if m.payee_kind is not None and txn.payee_kind != m.payee_kind:
            continue
        if m.mcc_in is not None and txn.mcc not in m.mcc_in:
            continue
        if m.min_amount_paise is not None and txn.amount_paise < m.min_amount_paise:
            continue
        if m.max_amount_paise is not None and txn.amount_paise > m.max_amount_paise:
            continue
        if m.active_from is not None and not txn.event_time >= m.active_from:
            continue
        if m.active_until is not None and not txn.event_time < m.active_until:
            continue
        coins = txn.amount_paise * rule.reward.bps // 1_000_000 + rule.reward.flat_coins
        if rule.reward.max_coins is not None:
            coins = min(coins, rule.reward.max_coins)
        out.append((rule.id, coins))
    return out


def expected(txns: Iterable[Transaction], rules: RulesFile) -> list[ExpectedDecision]:
    """What each event, in this order, must decide and emit."""
    tz = ZoneInfo(rules.timezone)
    users: dict[str, _User] = {}
    out: list[ExpectedDecision] = []
    for txn in txns:
        user_id = txn.payer_vpa
        user = users.setdefault(user_id, _User())
        if txn.status != "SUCCESS":
            out.append(ExpectedDecision(txn.txn_id, user_id, "IGNORED", 0))
            continue
        if txn.txn_id in user.succeeded:
            out.append(ExpectedDecision(txn.txn_id, user_id, "DUPLICATE", 0))
            continue
        user.succeeded.add(txn.txn_id)
        local = txn.event_time.astimezone(tz)
        day, month = local.date(), (local.year, local.month)
        if txn.kind == "PAYMENT":
            earned = _rule_coins(txn, rules)
            coins = sum(c for _, c in earned)
            daily = rules.limits.daily_coins_per_user
            monthly = rules.limits.monthly_coins_per_user
            if daily is not None:
                used = sum(c for d, _, c in user.grants if d == day)
                coins = min(coins, max(0, daily - used))
            if monthly is not None:
                used = sum(c for _, m, c in user.grants if m == month)
                coins = min(coins, max(0, monthly - used))
            user.payments[txn.txn_id] = _Payment(txn.amount_paise, coins)
            if coins <= 0:
                out.append(ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0))
                continue
            user.grants.append((day, month, coins))
            split, left = [], coins
            for rule_id, c in earned:
                if min(c, left) > 0:
                    split.append((rule_id, min(c, left)))
                    left -= min(c, left)
            grant = ExpectedGrant(
                f"{txn.txn_id}:grant", "GRANT", user_id, coins, txn.txn_id, txn.txn_id, tuple(split)
            )
            out.append(ExpectedDecision(txn.txn_id, user_id, "GRANTED", coins, (grant,)))
            continue
        # A SUCCESS REFUND.
        original = user.payments.get(txn.original_txn_id or "")
        if original is None:
            out.append(ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0))
            continue
        original.refunded += txn.amount_paise
        due = original.granted * min(original.refunded, original.amount) // original.amount
        claw = due - original.clawed
        if claw <= 0:
            out.append(ExpectedDecision(txn.txn_id, user_id, "NO_REWARD", 0))
            continue
        original.clawed += claw
        grant = ExpectedGrant(
            f"{txn.txn_id}:clawback",
            "CLAWBACK",
            user_id,
            claw,
            txn.original_txn_id or "",
            txn.txn_id,
            (),
        )
        out.append(ExpectedDecision(txn.txn_id, user_id, "CLAWED_BACK", claw, (grant,)))
    return out


def expected_balances(decisions: Iterable[ExpectedDecision]) -> dict[str, int]:
    """Coins granted minus coins clawed back, per user."""
    balances: dict[str, int] = {}
    for decision in decisions:
        for grant in decision.grants:
            sign = 1 if grant.kind == "GRANT" else -1
            balances[grant.user_vpa] = balances.get(grant.user_vpa, 0) + sign * grant.coins
    return balances
