"""tools.processes.stop_process: signal, bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys

from tools.processes import stop_process


def test_a_child_that_obeys_sigterm_exits_by_it() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert stop_process(proc, timeout_s=10) == -signal.SIGTERM


def test_a_child_that_ignores_the_signal_is_killed_after_the_wait() -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    assert stop_process(proc, timeout_s=0.5) == -signal.SIGKILL


def test_an_exited_child_is_left_alone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    assert stop_process(proc) == 3
