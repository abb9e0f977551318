"""The compiled core (mypyc, ``make compiled``) is current, in use, and decides as the pure one.

``rewards/__init__.py`` never imports a stale build (its manifest's hashes
differ from the sources): these tests fail then, so a stale build cannot go
unnoticed either. Run as a script (``python -m tests.unit.test_compiled_core``)
it prints the digest of a simulated run, for the pure-versus-compiled check.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import rewards
from rewards.rulebook import load_rules, parse_rules
from rewards.simulate import simulate
from rewards.state import decode_user, encode_user
from rewards.versions import RuleVersions
from tools.feedgen import generate

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "topologies" / "rules" / "launch.yaml"
BUILT, WHY = rewards.build_status()
needs_build = pytest.mark.skipif(
    not BUILT, reason=f"compiled core: {WHY}; the suite ran on the pure modules"
)


def test_a_build_present_is_current() -> None:
    if not (rewards.COMPILED_DIR / "manifest.json").exists():
        pytest.skip(f"compiled core: {WHY}")
    assert BUILT, f"the compiled core is {WHY}: it is ignored (pure Python runs) until rebuilt"


@needs_build
def test_the_compiled_modules_are_the_ones_imported() -> None:
    if rewards.pure_forced():
        pytest.skip(f"{rewards.PURE_ENV} is set")
    import json

    manifest = json.loads((rewards.COMPILED_DIR / "manifest.json").read_text())
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    assert manifest["modules"], manifest
    for name in manifest["modules"]:
        __import__(f"rewards.{name}")
        module = sys.modules[f"rewards.{name}"]
        assert str(module.__file__).endswith(suffix), (name, module.__file__)


def digest() -> str:
    """A digest of everything one simulated run emits and keeps, over two rule versions."""
    book = load_rules(RULES)
    later = parse_rules(
        {
            **book.spec.model_dump(mode="json", exclude_none=True),
            "version": "later",
            "effective_from": "2026-11-20T12:00:00+05:30",
            "limits": {"daily_coins_per_user": 60, "monthly_coins_per_user": 300},
        }
    )
    values = [m.value for m in generate(6000, seed=5, users=120, fraud_share=0.08)]
    sim = simulate(values, RuleVersions.of(book, [later]))
    h = hashlib.sha256()
    flags = sum(e.decision is None for e in sim.effects)
    versions = {e.decision.rules_version for e in sim.effects if e.decision is not None}
    for effects in sim.effects:
        for model in (effects.decision, *effects.grants, *effects.alerts):
            if model is not None:
                h.update(model.model_dump_json().encode())
        h.update(f"{effects.late}{effects.replay}".encode())
    for dead in sim.dead_letters:
        h.update(dead.model_dump_json().encode())
    for vpa in sorted(sim.state):
        raw = encode_user(sim.state[vpa])
        assert decode_user(raw) == sim.state[vpa]
        h.update(vpa.encode() + raw)
    counts = (len(sim.effects), len(sim.dead_letters), len(sim.alerts), flags, len(versions))
    return " ".join(map(str, (*counts, h.hexdigest())))


@needs_build
def test_pure_and_compiled_decide_the_same() -> None:
    def run(pure: str) -> str:
        env = {**os.environ, rewards.PURE_ENV: pure}
        done = subprocess.run(
            [sys.executable, "-m", "tests.unit.test_compiled_core"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    pure, compiled = run("1"), run("0")
    effects, dead_letters, alerts, flags, versions = map(int, pure.split()[:5])
    # what the run covers: decisions, dead letters, fraud alerts, circular flags, both versions
    assert (effects > 5000, dead_letters > 0, alerts > 0, flags > 0, versions) == (
        True,
        True,
        True,
        True,
        2,
    ), pure
    assert pure == compiled


if __name__ == "__main__":
    print(digest())
