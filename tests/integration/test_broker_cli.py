"""``upi-rewards broker``: the engine of REWARDS_TEST_BROKER starts, serves, stops on a signal."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokers.launcher import engine_from_env, free_port, port_in_use
from topologies.admin import ensure_topics, wait_for_broker

pytestmark = pytest.mark.integration


def _start(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The command on a free port; a new port when another process took it meanwhile.

    ``free_port`` releases the port it found, so anything on the box may take
    it before the broker binds it. The command then says so and exits 1; any
    other failure fails the test with the command's whole output and log.
    """
    for _ in range(3):
        port = free_port()
        log = tmp_path / f"broker-{port}.log"
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "tools.cli", "broker", "--engine", engine_from_env()),
                *("--port", str(port), "--log", str(log)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if f"broker ready on 127.0.0.1:{port}" in line:
            return proc, port
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
        output = line + rest.decode(errors="replace")
        if f"port {port} on 127.0.0.1 is already in use" in output and proc.returncode == 1:
            continue
        logged = log.read_text(errors="replace") if log.exists() else "(no log written)"
        pytest.fail(f"exit {proc.returncode}; output:\n{output}\nlog:\n{logged}")
    pytest.fail("three free ports in a row were taken before the broker bound them")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_broker_command_serves_metadata_and_stops_on_a_signal(tmp_path: Path, sig: int):
    proc, port = _start(tmp_path)
    try:
        wait_for_broker([f"127.0.0.1:{port}"], 10)
        ensure_topics([f"127.0.0.1:{port}"], {"probe": 2})
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while port_in_use("127.0.0.1", port):  # the broker went down with the command
            assert time.monotonic() < deadline, "broker still listening after the command exited"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broker_command_on_a_taken_port_says_so_and_exits_1(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "tools.cli", "broker", "--engine", engine_from_env()),
                *("--port", str(port), "--log", str(tmp_path / "broker.log")),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert f"upi-rewards broker: port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "Traceback" not in done.stderr
