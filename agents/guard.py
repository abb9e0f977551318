"""A batch is finished whole, or the process dies before Faust can ack any of it.

Faust's ``Stream.take_events`` acks a batch's events in a ``finally`` block:
when the agent's loop body leaves the batch by an exception or a cancellation
(SIGTERM, agent stop), the events are acked all the same, and the next offset
commit moves past them. A batch abandoned half way (outputs not all sent or
acknowledged, state not written) would then never be replayed: a lost grant.

So each batch runs as its own task:
- a cancellation of the agent waits for the batch to finish, then propagates;
- anything else escaping a batch (per-message errors are dead-lettered before
  this point; what is left is the broker refusing or timing out an output, or
  a record Faust never delivered, ``workarounds.continuity``) ends the process image
  at once, before the ``finally`` can run: the worker re-executes itself (same
  pid, same arguments, fresh state from the changelog) up to
  ``REWARDS_FAIL_STOP_RESTARTS`` times, then exits with status 70 for the
  orchestrator to restart. The restart replays from the last commit: an
  output can be repeated (same ids), never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NoReturn, cast

import faust
from faust.streams import Stream
from faust.types import EventT, StreamT

from agents.checkpoint import Pack, committing
from workarounds.continuity import GapProbe, OnGap, RecordSkipped, fail_on_gap, for_faust
from workarounds.stall_watch import StreamStalled

log = logging.getLogger(__name__)


#: Errors whose text names only topics and offsets, never a payload.
_SAFE_TO_PRINT = (RecordSkipped, StreamStalled)

#: Exit status of a fail-stop (EX_SOFTWARE): a supervisor restarts the worker.
FAIL_STOP_STATUS = 70


#: How many times this process lineage has re-executed itself after a fail-stop.
RESTARTS_ENV = "REWARDS_FAIL_STOPS"
#: Re-executions allowed before exiting for good (the orchestrator's turn).
LIMIT_ENV = "REWARDS_FAIL_STOP_RESTARTS"


def reexecutions() -> int:
    """How many times this process has re-executed itself after a fail-stop."""
    return int(os.environ.get(RESTARTS_ENV, "0"))


_stopping = False
_in_flight: set[asyncio.Future[None]] = set()


def shutting_down() -> None:
    """A stop was asked for (SIGTERM/SIGINT): a fail-stop from now on exits, never re-executes.

    Faust's stop closes the tables before it stops the agents (it waits for
    the events being processed first), so the worker also lets the batches in
    flight finish (``drain``) before it hands over to Faust; a batch that fails
    anyway ends the process, nothing of it acked, rather than starting a new one.
    """
    global _stopping
    _stopping = True


async def drain(timeout_s: float) -> None:
    """Wait (bounded) for the batches in flight to finish."""
    if _in_flight:
        await asyncio.wait(list(_in_flight), timeout=timeout_s)


def fail_stop(stage: str, exc: BaseException) -> NoReturn:
    """Leave now: no ``finally``, no ack, no offset commit, no clean-shutdown mark."""
    done = reexecutions()
    limit = int(os.environ.get(LIMIT_ENV, "3"))
    again = done < limit and not _stopping
    # The type and offsets only: exception texts can quote payloads (VPAs).
    log.critical(
        "%s: batch failed with %s%s (%s); %s so nothing of it is acked",
        stage,
        type(exc).__name__,
        f" ({exc})" if isinstance(exc, _SAFE_TO_PRINT) else "",
        committing(),
        f"re-executing the worker ({done + 1}/{limit})"
        if again
        else f"exiting with status {FAIL_STOP_STATUS}",
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    if again:
        os.environ[RESTARTS_ENV] = str(done + 1)
        with contextlib.suppress(OSError):  # cannot re-execute: exit instead
            os.execv(sys.executable, sys.orig_argv)
    os._exit(FAIL_STOP_STATUS)


def packs_of(events: Sequence[EventT[bytes]]) -> list[Pack]:
    """A take's records as ``(partition, offset, topic, value)`` (``commit_in_steps``)."""
    return [
        (e.message.partition, e.message.offset, e.message.topic, e.message.value) for e in events
    ]


async def whole_batch(
    stage: str,
    batch: Coroutine[Any, Any, None],
    die: Callable[[str, BaseException], Any] = fail_stop,
) -> None:
    """Run one batch to its end even if the caller is cancelled; die if it fails."""
    task = asyncio.ensure_future(batch)
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True  # finish the batch first; the stream acks it afterwards
        except Exception:  # the batch failed: handled below
            break
    exc = task.exception() if not task.cancelled() else asyncio.CancelledError()
    if exc is not None:
        die(stage, exc)
        raise exc  # only reached with a test's ``die`` that returns
    if cancelled:
        raise asyncio.CancelledError()


async def run_batches(
    app: faust.App,
    stage: str,
    stream: StreamT[bytes],
    handle: Callable[[Sequence[EventT[bytes]]], Awaitable[None]],
    batch_max: int,
    within_s: float,
    on_gap: OnGap = fail_on_gap,
    probe: GapProbe | None = None,
) -> None:
    """A stage's loop: each batch checked for skipped records, then handled whole.

    With a ``probe``, a partition first read this generation without a committed
    offset is checked against its log start, and every gap ``on_gap`` let pass
    (transactions: it counts) is read back: a committed record there fails the
    batch like a gap without transactions.
    """
    gaps: list[tuple[str, int, int, int]] = []

    def noted(topic: str, partition: int, first: int, last: int) -> None:
        on_gap(topic, partition, first, last)  # may raise
        gaps.append((topic, partition, first, last))

    continuity = for_faust(app, noted if probe is not None else on_gap)

    async def checked(events: Sequence[EventT[bytes]]) -> None:
        gaps.clear()
        positions = [(e.message.topic, e.message.partition, e.message.offset) for e in events]
        if probe is not None:
            for topic, partition in continuity.unknown(positions):
                continuity.start_at((topic, partition), await probe.log_start(topic, partition))
        continuity.check_positions(positions)  # raises before anything of the batch is done
        if probe is not None:
            for gap in gaps:
                await probe.check(*gap)  # a dropped record: raises, before anything too
        await handle(events)

    async for events in cast(Stream[bytes], stream).take_events(batch_max, within=within_s):
        await whole_batch(stage, checked(events))
