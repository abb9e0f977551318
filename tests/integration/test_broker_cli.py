"""``upi-rewards broker``: the engine of REWARDS_TEST_BROKER starts, serves, stops on a signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokers.launcher import engine_from_env, free_port, port_in_use
from topologies.admin import ensure_topics, wait_for_broker

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_broker_command_serves_metadata_and_stops_on_a_signal(tmp_path: Path, sig: int):
    port = free_port()
    log = tmp_path / "broker.log"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tools.cli", "broker", "--engine", engine_from_env()),
            *("--port", str(port), "--log", str(log)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert f"broker ready on 127.0.0.1:{port}" in line, line + log.read_text(errors="replace")
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
