"""Load, validate and evaluate the rules file.

Evaluation is split from caps: ``RuleBook.earn`` says what the rules alone pay
for one payment; the ledger then clamps that to the user's room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError

from rewards.errors import RulesError
from rewards.fraud import FraudConfig
from schemas.common import PayeeKind
from schemas.rules import Rule, RulesFile
from schemas.transaction import Transaction


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    """A rule flattened to plain values so matching is a few comparisons."""

    rule_id: str
    payee_kind: PayeeKind | None
    mccs: frozenset[str] | None
    min_amount: int | None
    max_amount: int | None
    active_from: datetime | None
    active_until: datetime | None
    bps: int
    flat: int
    max_coins: int | None

    @classmethod
    def of(cls, rule: Rule) -> _CompiledRule:
        m, r = rule.match, rule.reward
        return cls(
            rule_id=rule.id,
            payee_kind=m.payee_kind,
            mccs=frozenset(m.mcc_in) if m.mcc_in is not None else None,
            min_amount=m.min_amount_paise,
            max_amount=m.max_amount_paise,
            active_from=m.active_from,
            active_until=m.active_until,
            bps=r.bps,
            flat=r.flat_coins,
            max_coins=r.max_coins,
        )

    def matches(self, txn: Transaction) -> bool:
        if self.payee_kind is not None and txn.payee_kind is not self.payee_kind:
            return False
        if self.mccs is not None and txn.mcc not in self.mccs:
            return False
        amount = txn.amount_paise
        if self.min_amount is not None and amount < self.min_amount:
            return False
        if self.max_amount is not None and amount > self.max_amount:
            return False
        if self.active_from is not None and txn.event_time < self.active_from:
            return False
        return not (self.active_until is not None and txn.event_time >= self.active_until)

    def coins(self, amount_paise: int) -> int:
        coins = amount_paise * self.bps // 1_000_000 + self.flat
        return coins if self.max_coins is None else min(coins, self.max_coins)


@dataclass(frozen=True, slots=True)
class RuleBook:
    """A validated rules file, ready to evaluate."""

    spec: RulesFile
    tz: ZoneInfo
    _rules: tuple[_CompiledRule, ...]
    fraud: FraudConfig

    @classmethod
    def of(cls, spec: RulesFile) -> RuleBook:
        compiled = tuple(_CompiledRule.of(r) for r in spec.rules)
        return cls(spec, ZoneInfo(spec.timezone), compiled, FraudConfig.from_rules(spec.fraud))

    @property
    def version(self) -> str:
        return self.spec.version

    @property
    def daily_cap(self) -> int | None:
        return self.spec.limits.daily_coins_per_user

    @property
    def monthly_cap(self) -> int | None:
        return self.spec.limits.monthly_coins_per_user

    def earn(self, txn: Transaction) -> list[tuple[str, int]]:
        """Coins each matching rule pays for this payment, before caps, in file order."""
        return [(r.rule_id, r.coins(txn.amount_paise)) for r in self._rules if r.matches(txn)]


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def parse_rules(data: Any, source: str = "<rules>") -> RuleBook:
    """Validate an already-parsed rules document; raise RulesError naming the field."""
    if not isinstance(data, Mapping):
        raise RulesError(f"rules file {source}: expected a mapping at the top level")
    try:
        spec = RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_field_path(err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise RulesError(f"rules file {source}: {problems}") from None
    return RuleBook.of(spec)


def load_rules(path: str | Path) -> RuleBook:
    """Read and validate a YAML rules file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"rules file {path}: cannot read it ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RulesError(f"rules file {path}: not valid YAML ({exc})") from None
    return parse_rules(data, str(path))
