"""Small builders shared by the unit tests."""

from __future__ import annotations

import json
from typing import Any

from rewards.ledger import Effects
from rewards.rulebook import RuleBook, parse_rules
from schemas.decision import Decision
from schemas.transaction import Transaction

BASE: dict[str, Any] = {
    "txn_id": "T1",
    "kind": "PAYMENT",
    "status": "SUCCESS",
    "payer_vpa": "ravi.kumar@okaxis",
    "payee_vpa": "dmart.thane@ybl",
    "payee_kind": "MERCHANT",
    "mcc": "5411",
    "amount_paise": 100_000,
    "currency": "INR",
    "event_time": "2026-11-25T10:00:00+05:30",
}


def doc(**changes: Any) -> dict[str, Any]:
    out = {**BASE, **changes}
    return {k: v for k, v in out.items() if v is not ...}


def raw(**changes: Any) -> bytes:
    # stdlib json: it writes any int (orjson stops at 64 bits) and non-ASCII as UTF-8
    return json.dumps(doc(**changes), ensure_ascii=False).encode()


def txn(**changes: Any) -> Transaction:
    return Transaction.model_validate_json(raw(**changes))


def refund(txn_id: str, original: str, amount: int, **changes: Any) -> Transaction:
    return txn(
        txn_id=txn_id, kind="REFUND", original_txn_id=original, amount_paise=amount, **changes
    )


def decided(effects: Effects) -> Decision:
    """The decision in a transaction's effects (a flag's or a replay's have none)."""
    assert effects.decision is not None
    return effects.decision


def book(
    *rules: dict[str, Any],
    daily: int | None = None,
    monthly: int | None = None,
    fraud: dict[str, Any] | None = None,
) -> RuleBook:
    """A rule book; by default one rule: 1% of the amount (100 bps), no caps, no fraud."""
    limits = {
        k: v
        for k, v in (("daily_coins_per_user", daily), ("monthly_coins_per_user", monthly))
        if v is not None
    }
    return parse_rules(
        {
            "version": "test-1",
            "timezone": "Asia/Kolkata",
            "limits": limits,
            "rules": list(rules) or [{"id": "one-percent", "reward": {"bps": 100}}],
            **({"fraud": fraud} if fraud is not None else {}),
        }
    )


class Clock:
    """A settable clock: ``t`` seconds, for code that takes ``clock: Callable[[], float]``."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t
