"""agents.guard: a batch finishes whole under cancellation, and a failed batch dies first."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from agents import guard
from agents.guard import whole_batch


@pytest.fixture(autouse=True)
def _not_stopping() -> None:
    guard._stopping = False


class Died(Exception):
    pass


def _die(stage: str, exc: BaseException) -> None:
    raise Died(stage, type(exc).__name__)


def test_a_cancelled_caller_waits_for_the_batch_to_finish() -> None:
    done: list[str] = []

    async def batch() -> None:
        await asyncio.sleep(0.05)  # e.g. waiting for the broker's acks
        done.append("written")

    async def main() -> None:
        caller = asyncio.ensure_future(whole_batch("decide", batch(), die=_die))
        await asyncio.sleep(0.01)
        caller.cancel()  # Faust stopping the agent mid-batch
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert done == ["written"], "the cancellation overtook the batch"

    asyncio.run(main())


def test_repeated_cancellation_still_finishes_the_batch() -> None:
    done: list[str] = []

    async def batch() -> None:
        await asyncio.sleep(0.05)
        done.append("written")

    async def main() -> None:
        caller = asyncio.ensure_future(whole_batch("decide", batch(), die=_die))
        for _ in range(3):
            await asyncio.sleep(0.01)
            caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert done == ["written"]

    asyncio.run(main())


def test_a_failed_batch_dies_instead_of_returning_to_the_stream() -> None:
    async def batch() -> None:
        await asyncio.sleep(0)
        raise ConnectionError("broker refused the output")

    with pytest.raises(Died) as info:
        asyncio.run(whole_batch("ingest", batch(), die=_die))
    assert info.value.args == ("ingest", "ConnectionError")


def test_a_batch_failing_after_a_cancellation_still_dies() -> None:
    async def batch() -> None:
        await asyncio.sleep(0.03)
        raise TimeoutError("acks never came")

    async def main() -> None:
        caller = asyncio.ensure_future(whole_batch("circular", batch(), die=_die))
        await asyncio.sleep(0.01)
        caller.cancel()
        with pytest.raises(Died):
            await caller

    asyncio.run(main())


def test_a_good_batch_returns_normally() -> None:
    done: list[int] = []

    async def batch() -> None:
        done.append(1)

    asyncio.run(whole_batch("decide", batch(), die=_die))
    assert done == [1]


#: A worker stand-in: one failing batch, and a ``finally`` that would ack it.
FAILING_WORKER = (
    "import asyncio, os\n"
    "from agents.guard import whole_batch\n"
    "print('START', os.getpid(), os.environ.get('REWARDS_FAIL_STOPS', '0'), flush=True)\n"
    "async def bad():\n"
    "    raise RuntimeError('x')\n"
    "async def main():\n"
    "    try:\n"
    "        await whole_batch('decide', bad())\n"
    "    finally:\n"
    "        print('ACKED', flush=True)\n"
    "asyncio.run(main())\n"
)


def run_child(code: str, restarts: int) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "REWARDS_FAIL_STOP_RESTARTS": str(restarts)}
    env.pop("REWARDS_FAIL_STOPS", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, env=env)


def test_the_default_fail_stop_exits_the_process_without_cleanup() -> None:
    """Run in a child: os._exit must skip the ``finally`` that would ack the batch."""
    proc = run_child(FAILING_WORKER, restarts=0)
    assert proc.returncode == 70
    assert b"ACKED" not in proc.stdout
    assert b"RuntimeError" in proc.stderr


def test_a_fail_stop_re_executes_the_worker_up_to_the_limit_then_exits() -> None:
    """Each incarnation starts from scratch (same pid, same argv); the lineage is bounded."""
    proc = run_child(FAILING_WORKER, restarts=2)
    starts = [
        line.split() for line in proc.stdout.decode().splitlines() if line.startswith("START")
    ]
    assert [s[2] for s in starts] == ["0", "1", "2"]
    assert len({s[1] for s in starts}) == 1, "re-executed in place, same pid"
    assert b"ACKED" not in proc.stdout
    assert proc.returncode == 70


def test_drain_waits_for_the_batches_in_flight() -> None:
    done: list[str] = []

    async def batch(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        done.append(name)

    async def main() -> None:
        first = asyncio.ensure_future(whole_batch("decide", batch("in flight", 0.05), die=_die))
        await asyncio.sleep(0.01)
        guard.shutting_down()  # SIGTERM
        await guard.drain(timeout_s=5)
        assert done == ["in flight"]
        await first

    asyncio.run(main())


def test_a_fail_stop_during_a_stop_exits_without_re_executing() -> None:
    code = (
        "import asyncio, os\n"
        "from agents import guard\n"
        "print('START', flush=True)\n"
        "async def bad():\n"
        "    await asyncio.sleep(0.05)\n"
        "    raise RuntimeError('table closed')\n"
        "async def main():\n"
        "    task = asyncio.ensure_future(guard.whole_batch('decide', bad()))\n"
        "    await asyncio.sleep(0.01)\n"
        "    guard.shutting_down()\n"
        "    await task\n"
        "asyncio.run(main())\n"
    )
    proc = run_child(code, restarts=3)
    assert proc.stdout.decode().count("START") == 1
    assert proc.returncode == 70


def test_stall_watch_fires_only_for_a_partition_behind_and_not_moving():
    from workarounds.stall_watch import StallWatch, StreamStalled

    now = [0.0]
    watch = StallWatch(45.0, clock=lambda: now[0])
    tp, other = ("t", 1), ("t", 2)
    assert watch.check({tp: (10, 12), other: (5, 5)}) is None  # behind: the clock starts
    now[0] = 40.0
    assert watch.check({tp: (10, 12), other: (5, 9)}) is None
    now[0] = 46.0
    stalled = watch.check({tp: (10, 12), other: (6, 9)})  # other moved; tp did not
    assert isinstance(stalled, StreamStalled) and "t[1]: 2 records behind" in str(stalled)
    now[0] = 47.0
    assert watch.check({tp: (11, 12), other: (7, 9)}) is None  # progress resets the clock
    now[0] = 100.0
    assert watch.check({tp: (12, 12), other: (9, 9)}) is None  # caught up
    now[0] = 200.0
    assert watch.check({tp: (12, 14)}) is None  # behind again: a fresh start
    watch.reset()
    now[0] = 300.0
    assert watch.check({tp: (12, 14)}) is None  # reset (not ready) restarts the clock
