"""Load, validate and evaluate the rules file.

Evaluation is split from caps: ``RuleBook.earn`` says what the rules alone pay
for one payment; the ledger then clamps that to the user's room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_NEVER = 1 << 62  # beyond any datetime in microseconds since the epoch


def _epoch_us(moment: datetime) -> int:
    """Exact microseconds since the epoch: compares as the aware datetimes do."""
    return (moment - _EPOCH) // _US


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    """A rule flattened to plain values so matching is a few integer comparisons."""

    rule_id: str
    payee_kind: PayeeKind | None
    mccs: frozenset[str] | None
    min_amount: int  # 0: no lower bound
    max_amount: int  # _NEVER: no upper bound
    #: active window in epoch µs, [from, until); None when the rule has none
    active: tuple[int, int] | None
    bps: int
    flat: int
    max_coins: int | None

    @classmethod
    def of(cls, rule: Rule) -> _CompiledRule:
        m, r = rule.match, rule.reward
        timed = m.active_from is not None or m.active_until is not None
        return cls(
            rule_id=rule.id,
            payee_kind=m.payee_kind,
            mccs=frozenset(m.mcc_in) if m.mcc_in is not None else None,
            min_amount=m.min_amount_paise if m.min_amount_paise is not None else 0,
            max_amount=m.max_amount_paise if m.max_amount_paise is not None else _NEVER,
            active=(
                (
                    _epoch_us(m.active_from) if m.active_from is not None else -_NEVER,
                    _epoch_us(m.active_until) if m.active_until is not None else _NEVER,
                )
                if timed
                else None
            ),
            bps=r.bps,
            flat=r.flat_coins,
            max_coins=r.max_coins,
        )

    def applies_to(self, payee_kind: PayeeKind, mcc: str | None) -> bool:
        """The payee filters alone (what ``RuleBook.earn`` caches per payee kind and MCC)."""
        if self.payee_kind is not None and payee_kind is not self.payee_kind:
            return False
        return self.mccs is None or mcc in self.mccs

    def matches(self, txn: Transaction) -> bool:
        if not self.applies_to(txn.payee_kind, txn.mcc):
            return False
        if not self.min_amount <= txn.amount_paise <= self.max_amount:
            return False
        if self.active is None:
            return True
        start, until = self.active
        return start <= _epoch_us(txn.event_time) < until

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
    #: the rules file's values, read per event (plain fields: no lookups)
    version: str
    daily_cap: int | None
    monthly_cap: int | None
    #: (payee_kind, mcc) -> the rules whose payee filters pass, in file order
    _by_payee: dict[tuple[PayeeKind, str | None], tuple[_CompiledRule, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, spec: RulesFile) -> RuleBook:
        compiled = tuple(_CompiledRule.of(r) for r in spec.rules)
        return cls(
            spec,
            ZoneInfo(spec.timezone),
            compiled,
            FraudConfig.from_rules(spec.fraud),
            spec.version,
            spec.limits.daily_coins_per_user,
            spec.limits.monthly_coins_per_user,
        )

    def at(self, event_time: datetime) -> RuleBook:
        """The version deciding an event of this time: a single book is always itself."""
        return self

    def at_ms(self, t_ms: int) -> RuleBook:
        return self

    def earn(self, txn: Transaction) -> list[tuple[str, int]]:
        """Coins each matching rule pays for this payment, before caps, in file order."""
        key = (txn.payee_kind, txn.mcc)
        rules = self._by_payee.get(key)
        if rules is None:  # at most two payee kinds times 10,001 MCC values
            rules = self._by_payee[key] = tuple(
                r for r in self._rules if r.applies_to(txn.payee_kind, txn.mcc)
            )
        amount = txn.amount_paise
        at = None
        out = []
        for r in rules:
            if amount < r.min_amount or amount > r.max_amount:
                continue
            if r.active is not None:
                if at is None:
                    at = _epoch_us(txn.event_time)
                if not r.active[0] <= at < r.active[1]:
                    continue
            coins = amount * r.bps // 1_000_000 + r.flat
            if r.max_coins is not None and coins > r.max_coins:
                coins = r.max_coins
            out.append((r.rule_id, coins))
        return out


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
