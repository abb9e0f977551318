"""The pure rewards core: rules, caps, refunds, validation. No Faust, no Kafka.

The same functions serve the worker's agents, the replay tools and the unit
tests, so what the tests prove is what production runs.

The modules may run compiled (mypyc, ``make compiled``: ``tools/compile_core.py``
builds them into ``rewards/_compiled/``). The ``.py`` files stay the source:
the compiled directory is put ahead of this one on the package's ``__path__``
only while its manifest's hashes match the current sources (``rewards/*.py``
and ``schemas/*.py``, which the compiled code was type-checked against), and
not when ``REWARDS_PURE_CORE=1``. Otherwise, and when nothing was built, the
modules are imported from their ``.py`` files, with the same results.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

#: Where ``tools/compile_core.py`` puts the extensions and ``manifest.json``.
COMPILED_DIR = Path(__file__).resolve().parent / "_compiled"
#: Set to 1: import every module from its ``.py`` file, even when compiled.
PURE_ENV = "REWARDS_PURE_CORE"


def source_digests(root: Path, names: list[str]) -> dict[str, str]:
    """SHA-256 of each file ``names`` (paths relative to ``root``)."""
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in names}


def pure_forced() -> bool:
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def build_status() -> tuple[bool, str]:
    """(a compiled build is there and current, why or why not), whatever ``PURE_ENV`` says."""
    try:
        manifest = json.loads((COMPILED_DIR / "manifest.json").read_text(encoding="utf-8"))
        built: dict[str, str] = manifest["inputs"]
        modules: list[str] = manifest["modules"]
    except FileNotFoundError:
        return False, "not built (make compiled)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable manifest ({exc!r}): run make compiled"
    root = COMPILED_DIR.parent.parent
    try:
        now = source_digests(root, sorted(built))
    except OSError as exc:
        return False, f"a source is missing ({exc}): run make compiled"
    stale = [name for name in built if now[name] != built[name]]
    if stale:
        return False, f"stale: {', '.join(stale)} changed since the build: run make compiled"
    return True, f"compiled: {', '.join(modules)}"


_BUILT, _WHY = build_status()
#: Are this process's core modules the compiled ones? And why (not).
COMPILED = _BUILT and not pure_forced()
COMPILED_WHY = f"{PURE_ENV} is set" if _BUILT and not COMPILED else _WHY
if COMPILED:
    __path__.insert(0, str(COMPILED_DIR))
elif not pure_forced() and COMPILED_DIR.joinpath("manifest.json").exists():
    # A stale build is never used; say so, once per process.
    print(f"rewards: running the pure Python core: compiled core {COMPILED_WHY}", file=sys.stderr)
