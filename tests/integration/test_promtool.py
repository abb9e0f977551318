"""Prometheus's own promtool over the shipped config, the alert rules and their unit tests.

Here, not in tests/unit: ``tests.prom.ensure_prometheus`` may install Debian's
``prometheus`` package (apt-get), which a unit run must never do.
"""

from __future__ import annotations

import pytest

from tests.prom import DEPLOY, RULES, RULES_TEST, ensure_prometheus, promtool

pytestmark = pytest.mark.integration

PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"


@pytest.fixture(scope="module")
def binaries():
    found = ensure_prometheus()
    if found is None:
        pytest.skip("promtool is not installed and apt-get cannot be used")
    return found


def test_promtool_checks_the_shipped_config_and_rules(binaries):
    promtool(binaries, "check", "config", str(PROM_CONFIG))
    promtool(binaries, "check", "rules", str(RULES))


def test_promtool_unit_tests_of_the_alerts(binaries):
    out = promtool(binaries, "test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert "SUCCESS" in out
