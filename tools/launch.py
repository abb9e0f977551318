"""Starting a worker process the same way everywhere: the demo, the bench and the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path


def worker_command(flags: Sequence[str] = ()) -> list[str]:
    """``upi-rewards worker FLAGS`` with this interpreter (no installed script needed)."""
    return [sys.executable, "-m", "tools.cli", "worker", *flags]


def spawn_worker(
    log: Path,
    flags: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A worker with ``flags`` and this environment plus ``env``, its output appended to ``log``.

    In a session of its own, as every child of a launcher here: a signal sent
    to the launcher's process group (a terminal's Ctrl-C, a supervisor) does
    not reach it directly; the launcher stops it (``tools.processes``).
    """
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            worker_command(flags),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
