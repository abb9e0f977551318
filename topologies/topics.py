"""Topic names and keys: the external contract (docs/contracts.md) plus our internals."""

from __future__ import annotations

from dataclasses import dataclass

TRANSACTIONS = "upi.transactions"  # input, owned by the bank; key: anything
COIN_GRANTS = "rewards.coin-grants"  # key: user_vpa
DECISIONS = "rewards.decisions"  # key: user_vpa
DEAD_LETTERS = "rewards.dead-letters"  # key: none
FRAUD_ALERTS = "rewards.fraud-alerts"  # key: user_vpa
RULES = "rewards.rules"  # compacted, one partition; key: the rules version (tools.campaigns)

OUTPUTS = (COIN_GRANTS, DECISIONS, DEAD_LETTERS, FRAUD_ALERTS)


@dataclass(frozen=True, slots=True)
class Internal:
    """Topics the app owns, prefixed with the app id so two apps never share one."""

    app_id: str

    @property
    def by_payer(self) -> str:
        """The feed, validated and re-keyed by payer_vpa: one user, one partition."""
        return f"{self.app_id}.txns-by-payer"

    @property
    def by_pair(self) -> str:
        """SUCCESS payments keyed by the unordered (payer, payee) pair: circular detection."""
        return f"{self.app_id}.payments-by-pair"

    @property
    def edge_group(self) -> str:
        """The ingest edge's consumer group on the feed (agents.edge)."""
        return f"{self.app_id}-ingest"

    @property
    def state_table(self) -> str:
        return "user-state"

    @property
    def pair_table(self) -> str:
        return "pair-state"
