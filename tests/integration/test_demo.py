"""The README's main job, end to end, as a user runs it (smaller feed)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from brokers.launcher import engine_from_env, free_port
from tests.integration.conftest import values, wait_for_outputs
from topologies import topics

pytestmark = pytest.mark.integration


def test_demo_accounts_for_every_message_and_stops_cleanly():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "demo",
            "--engine",
            engine_from_env(),
            "--count",
            "3000",
            "--web-port",
            str(free_port()),
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert re.search(r"accounted for\s+: yes \(in 3,000 = decisions [\d,]+ \+ dead letters", out)
    assert re.search(r"throughput\s+: [\d,]+ events/s", out)
    assert 'rewards_events_total{outcome="GRANTED"}' in out
    assert "stopped broker and worker" in out
    token = re.search(r"api token\s+: (\S+)", out)
    assert token is not None
    assert re.search(
        rf"api example\s+: curl -H 'Authorization: Bearer {re.escape(token[1])}' "
        r"'http://127\.0\.0\.1:\d+/v1/users/[^/\s]+@[a-z0-9]+/rewards\?at=[^'\s]+'",
        out,
    )


def test_feed_command_produces_the_requested_count(broker, workers):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "feed",
            "--count",
            "500",
            "--seed",
            "3",
            "--rate",
            "2000",
            "--bootstrap",
            broker.bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "produced 500 messages" in result.stdout
    workers.start()
    out = wait_for_outputs(broker.bootstrap, 500)
    decided = out.count(topics.DECISIONS) + out.count(topics.DEAD_LETTERS)
    assert decided == 500
    assert all(orjson.loads(v)["rules_version"] for v in values(out, topics.DECISIONS))


def _children(pid: int) -> set[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_demo_alone_stops_its_broker_and_worker(sig: int):
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tools.cli", "demo", "--engine", engine_from_env()),
            *("--count", "200000", "--web-port", str(free_port()), "--timeout", "300"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a supervisor's child: its signal reaches the demo alone
    )
    try:
        assert proc.stdout is not None
        seen = []
        for raw in proc.stdout:
            seen.append(raw.decode(errors="replace"))
            if seen[-1].startswith("worker  : pid"):
                break
        else:
            raise AssertionError("".join(seen))
        worker_pid = int(seen[-1].split()[3].rstrip(","))
        children = _children(proc.pid)
        assert worker_pid in children and len(children) >= 2, (children, seen)  # broker + worker
        proc.send_signal(sig)
        rest = proc.communicate(timeout=60)[0].decode(errors="replace")
        deadline = time.monotonic() + 10
        while left := {pid for pid in children if _alive(pid)}:
            assert time.monotonic() < deadline, f"still running after it exited: {left}\n{rest}"
            time.sleep(0.1)
        # 130 is the interrupted exit; a traceback from the cleanup is another code
        assert proc.returncode == 130, "".join(seen) + rest
        assert "stopped broker and worker" in rest, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
