"""An invalid rules file stops startup with a message that names the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rewards.errors import RulesError
from rewards.rulebook import load_rules, parse_rules
from topologies.settings import DEFAULT_RULES

LAUNCH: dict[str, Any] = yaml.safe_load(DEFAULT_RULES.read_text())


def broken(path: str, value: Any) -> dict[str, Any]:
    """The launch rules with one value replaced (``...`` deletes it)."""
    doc = copy.deepcopy(LAUNCH)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for part in parents:
        node = node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


def test_shipped_rules_load():
    book = load_rules(DEFAULT_RULES)
    assert book.version == "2026-11-launch" and book.daily_cap == 200 and book.monthly_cap == 2000
    assert [r.id for r in book.spec.rules] == [
        "merchant-base",
        "grocery-dining-boost",
        "p2p-welcome",
    ]


@pytest.mark.parametrize(
    ("path", "value", "names"),
    [
        ("version", ..., "version"),
        ("version", 2026, "version"),
        ("timezone", "Asia/Bombay_Typo", "timezone"),
        ("limits.daily_coins_per_user", -1, "limits.daily_coins_per_user"),
        ("limits.monthly_coins_per_user", 2.5, "limits.monthly_coins_per_user"),
        ("limits.weekly_coins_per_user", 5, "limits.weekly_coins_per_user"),
        ("rules", ..., "rules"),
        ("rules.0.id", "has space", "rules[0].id"),
        ("rules.1.id", "merchant-base", "rules[1].id: duplicate"),
        ("rules.0.reward", ..., "rules[0].reward"),
        ("rules.0.reward.bps", 20_000, "rules[0].reward.bps"),
        ("rules.0.reward.bps", "100", "rules[0].reward.bps"),
        ("rules.0.reward.bps", 1.5, "rules[0].reward.bps"),
        ("rules.0.reward.max_coin", 50, "rules[0].reward.max_coin"),
        ("rules.0.reward.flat_coins", -2, "rules[0].reward.flat_coins"),
        ("rules.0.match.payee_kind", "SHOP", "rules[0].match.payee_kind"),
        ("rules.1.match.mcc_in", [5411], "rules[1].match.mcc_in[0]"),
        ("rules.1.match.mcc_in", ["541"], "rules[1].match.mcc_in[0]"),
        ("rules.1.match.mcc_in", [], "rules[1].match.mcc_in"),
        ("rules.1.match.min_amount_paise", 9_000_000, "rules[1].match"),
        ("rules.1.match.active_from", "2026-11-01T00:00:00", "rules[1].match.active_from"),
        ("rules.1.match.active_until", "2026-10-01T00:00:00+05:30", "rules[1].match"),
        ("fraud.allowed_lateness_seconds", -1, "fraud.allowed_lateness_seconds: Input should be g"),
        ("fraud.allowed_lateness_seconds", 3600.5, "fraud.allowed_lateness_seconds: Input should"),
        ("fraud.allowed_lateness_seconds", "86400", "fraud.allowed_lateness_seconds: Input should"),
        ("fraud.allowed_lateness_seconds", True, "fraud.allowed_lateness_seconds: Input should"),
        ("fraud.allowed_lateness_seconds", 604_801, "fraud.allowed_lateness_seconds: Input should"),
        ("fraud.allowed_lateness_second", 60, "fraud.allowed_lateness_second: Extra inputs"),
    ],
)
def test_error_names_the_field(path, value, names):
    with pytest.raises(RulesError) as err:
        parse_rules(broken(path, value), "launch.yaml")
    assert "launch.yaml" in str(err.value)
    assert names in str(err.value)


def test_allowed_lateness_absent_or_null_keeps_each_detectors_window_as_its_allowance():
    shipped = load_rules(DEFAULT_RULES).fraud
    assert (shipped.late_ms, shipped.pair_late_ms) == (86_400_000, 86_400_000)
    assert shipped.seen_ms == 86_400_000 + 3_600_000  # allowance + the largest payer window
    for value in (..., None):
        fraud = parse_rules(broken("fraud.allowed_lateness_seconds", value)).fraud
        assert (fraud.lateness_ms, fraud.late_ms, fraud.pair_late_ms, fraud.seen_ms) == (
            None,
            3_600_000,  # max(velocity 600 s, same_payee 3600 s)
            86_400_000,  # the circular window
            7_200_000,  # twice the largest payer window, as before the setting
        )
    edge = parse_rules(broken("fraud.allowed_lateness_seconds", 7 * 24 * 3600)).fraud
    assert edge.late_ms == 604_800_000


def test_not_yaml_and_missing_file(tmp_path: Path):
    bad = tmp_path / "r.yaml"
    bad.write_text("version: [unclosed\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(bad)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.yaml")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(RulesError, match="mapping at the top level"):
        load_rules(bad)
