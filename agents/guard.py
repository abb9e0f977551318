"""A batch is finished whole, or the process dies before Faust can ack any of it.

Faust's ``Stream.take_events`` acks a batch's events in a ``finally`` block:
when the agent's loop body leaves the batch by an exception or a cancellation
(SIGTERM, agent stop), the events are acked all the same, and the next offset
commit moves past them. A batch abandoned half way (outputs not all sent or
acknowledged, state not written) would then never be replayed: a lost grant.

So each batch runs as its own task:
- a cancellation of the agent waits for the batch to finish, then propagates;
- anything else escaping a batch (per-message errors are dead-lettered before
  this point; what is left is the broker refusing or timing out an output)
  ends the process at once, before the ``finally`` can run. The restart replays
  from the last commit: an output can be repeated (same ids), never lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

log = logging.getLogger(__name__)

#: Exit status of a fail-stop (EX_SOFTWARE): a supervisor restarts the worker.
FAIL_STOP_STATUS = 70


def fail_stop(stage: str, exc: BaseException) -> NoReturn:
    """Exit now: no ``finally``, no ack, no offset commit, no clean-shutdown mark."""
    # The type only: exception texts can quote payloads, and payloads carry VPAs.
    log.critical(
        "%s: batch failed with %s; exiting (status %d) so nothing of it is acked",
        stage,
        type(exc).__name__,
        FAIL_STOP_STATUS,
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(FAIL_STOP_STATUS)


async def whole_batch(
    stage: str,
    batch: Coroutine[Any, Any, None],
    die: Callable[[str, BaseException], Any] = fail_stop,
) -> None:
    """Run one batch to its end even if the caller is cancelled; die if it fails."""
    task = asyncio.ensure_future(batch)
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
