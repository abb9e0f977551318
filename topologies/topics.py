"""Topic names and keys: the external contract (docs/contracts.md) plus our internals."""

from __future__ import annotations

from dataclasses import dataclass

TRANSACTIONS = "upi.transactions"  # input, owned by the bank; key: anything
COIN_GRANTS = "rewards.coin-grants"  # key: user_vpa
DECISIONS = "rewards.decisions"  # key: user_vpa
DEAD_LETTERS = "rewards.dead-letters"  # key: none

OUTPUTS = (COIN_GRANTS, DECISIONS, DEAD_LETTERS)


@dataclass(frozen=True, slots=True)
class Internal:
    """Topics the app owns, prefixed with the app id so two apps never share one."""

    app_id: str

    @property
    def by_payer(self) -> str:
        """The feed, validated and re-keyed by payer_vpa: one user, one partition."""
        return f"{self.app_id}.txns-by-payer"

    @property
    def state_table(self) -> str:
        return "user-state"
