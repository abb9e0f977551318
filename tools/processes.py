"""Stopping a child process the same way everywhere: a signal, a bounded wait, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


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


#: What a supervisor, ``docker stop``, a closed terminal or Ctrl-C send to a launcher.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    """Make SIGTERM, SIGINT and SIGHUP raise ``KeyboardInterrupt`` in the main thread.

    For the launchers (``broker``, ``demo``, the bench): each starts its
    children in their own sessions, so a signal to the launcher alone reaches
    no child; the launcher's ``finally`` stops them. Set even when the signal
    was ignored at start (``nohup``, a shell's background job).
    """
    for sig in STOP_SIGNALS:
        signal.signal(sig, _interrupt)


@contextmanager
def shielded() -> Iterator[None]:
    """Ignore the stop signals inside the block: a launcher's cleanup runs to its end.

    A second Ctrl-C (or a supervisor's repeated SIGTERM) during the ``finally``
    would otherwise abandon the children it was stopping. Each step inside is
    bounded (``stop_process`` kills after its timeout), so the block ends.
    Main thread only, as ``signal.signal``.

    >>> with shielded():
    ...     signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    True
    """
    old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
