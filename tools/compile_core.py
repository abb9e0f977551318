"""Compile the pure core with mypyc into ``rewards/_compiled/`` (``make compiled``).

    .venv/bin/python -m tools.compile_core [--only calendar,ledger,...]

(``--only``: a subset of ``MODULES``, to measure what each is worth; the
others then run as Python. ``make compiled`` builds them all.)

The ``.py`` files stay the source of truth: the extensions go to a directory
of their own with a ``manifest.json`` listing the modules and the SHA-256 of
every input they were built from (``rewards/*.py`` and ``schemas/*.py``);
``rewards/__init__.py`` puts that directory first on the package's
``__path__`` only while those hashes match the files (and not under
``REWARDS_PURE_CORE=1``). The build happens in ``build/mypyc/`` and replaces
``rewards/_compiled/`` whole at the end; the old one is removed before the
build starts, so a failed build leaves the pure modules, never a stale or
half-built set. Exit status 1 on a failure, with the compiler's output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from rewards import source_digests

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rewards"
COMPILED = PACKAGE / "_compiled"
WORK = ROOT / "build" / "mypyc"
#: The modules compiled: the hot path of a decision and of a backtest
#: (docs/performance.md, "The compiled core"). One mypyc group, so calls among
#: them are direct C calls; compiled without the loops that call them
#: (``simulate``, ``backtest``) they gain nothing measurable. Not compiled:
#: ``validate`` (a thin wrapper around pydantic-core: no gain measured),
#: ``account`` (the API's answers, not per event), ``errors``.
MODULES = (
    "backtest",
    "calendar",
    "circular",
    "fraud",
    "ledger",
    "rulebook",
    "simulate",
    "state",
    "versions",
    "windows",
)
#: The shared library of the group, inside the package: ``rewards._core__mypyc``.
GROUP = "rewards._core"

# Run in a child process (``--setup``) so mypyc's build runs with a clean
# ``sys.argv`` and its own cwd.
_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

modules, target, lib, temp = sys.argv[1].split(","), *sys.argv[2:5]
setup(
    name="rewards-compiled",
    ext_modules=mypycify(
        [f"rewards/{m}.py" for m in modules], group_name="{group}", target_dir=target, opt_level="3"
    ),
    script_args=["build_ext", "--build-lib", lib, "--build-temp", temp],
)
"""


def inputs() -> list[str]:
    """Every file the compiled code depends on, relative to the repository root."""
    return sorted(
        str(p.relative_to(ROOT))
        for d in ("rewards", "schemas")
        for p in (ROOT / d).glob("*.py")
        if p.name != "__init__.py" or d == "schemas"
    )


def build(modules: tuple[str, ...] = MODULES) -> int:
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    shutil.rmtree(COMPILED, ignore_errors=True)  # never leave an old build behind
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    names = inputs()
    # What the build reads: a file edited meanwhile leaves the build stale (refused below).
    before = source_digests(ROOT, names)
    lib, temp, target = WORK / "lib", WORK / "temp", WORK / "c"
    setup = _SETUP.replace("{group}", GROUP)
    env = {**os.environ, "REWARDS_PURE_CORE": "1"}
    args = [",".join(modules), str(target), str(lib), str(temp)]
    done = subprocess.run(
        [sys.executable, "-c", setup, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    built = lib / "rewards"
    expected = [f"{m}{suffix}" for m in modules] + [f"_core__mypyc{suffix}"]
    missing = [name for name in expected if not (built / name).is_file()]
    if done.returncode != 0 or missing:
        print(done.stdout[-20_000:], file=sys.stderr)
        print(done.stderr[-20_000:], file=sys.stderr)
        print(
            f"compile_core: mypyc build failed (exit {done.returncode}"
            f"{', but missing ' + ', '.join(missing) if done.returncode == 0 else ''}); "
            "the core runs on its pure Python modules",
            file=sys.stderr,
        )
        return 1
    if source_digests(ROOT, names) != before:
        print("compile_core: a source changed during the build; run it again", file=sys.stderr)
        return 1
    staging = WORK / "_compiled"
    staging.mkdir()
    for name in expected:
        shutil.copy2(built / name, staging / name)
    manifest = {"modules": list(modules), "inputs": before, "python": sys.version.split()[0]}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
    os.replace(staging, COMPILED)  # whole: the manifest appears with the extensions
    print(f"compile_core: {len(modules)} modules compiled into {COMPILED.relative_to(ROOT)}/")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated modules of MODULES")
    args = parser.parse_args()
    modules = tuple(args.only.split(",")) if args.only else MODULES
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        parser.error(f"not in MODULES: {', '.join(unknown)}")
    raise SystemExit(build(modules))


if __name__ == "__main__":
    main()
