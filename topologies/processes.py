"""Stopping a child process the same way everywhere: a signal, a bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 20.0
) -> int:
    """Send ``sig`` if it still runs, wait up to ``timeout_s``, else kill it; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)
