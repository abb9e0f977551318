"""Faust hands each fetched record to its streams in one step of the loop, not four.

Faust's fetch loop (``Consumer._drain_messages``) delivers every record with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: mode's
``wait_first`` wraps both coroutines and the service's ``stopped`` and
``crashed`` events in four tasks, waits for the first, and cancels the other
three. Delivery itself (``Conductor.on_message``: decode, ``put_nowait`` onto
each stream's queue) never waits while the flow runs, so the tasks buy nothing
but event-loop turns: each record costs two or three turns, and every other
stage takes a step in each. Measured (Apache Kafka, one worker, 2,000 ev/s):
the loop drained ~2 ms per record, a fetch of 243 packs took ~400 ms to reach
the streams, and packs reached the decide agent 250–450 ms after the edge sent
them; with this module, 5–30 ms.

``install`` replaces ``wait_first`` on Faust's consumer for exactly that call,
and only while the delivery cannot wait: the flow is not being suspended
(no rebalance starting), the app's flow control is active, Faust's producer
buffer is under its limit and no stream queue is full. Then the callback is
awaited directly and runs to its end in the current step. In every other case
(and every other use of ``wait_first``) Faust's own path runs, so a rebalance
still abandons a delivery that would block.

Left: a delivery that waits all the same (a lock held by a rebalance in the
same instant) finishes after the rebalance instead of being abandoned. Its
event carries the old generation, which the stream drops; the read offset
Faust then records may lie ahead of where the new generation reads, so Faust
would drop the records between, and the continuity check
(``workarounds.continuity``) fail-stops the worker: a re-execution, not a loss.
"""

from __future__ import annotations

import inspect
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

_original = Consumer.wait_first


def _is_wait_of(coro: Any, event: Any) -> bool:
    """Whether ``coro`` is ``event.wait()``, not yet started."""
    frame = getattr(coro, "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") is event


def delivery_cannot_wait(consumer: Any) -> bool:
    """Every condition under which ``Conductor.on_message`` would suspend is false."""
    app = consumer.app
    if consumer.suspend_flow.is_set() or not app.flow_control.is_active():
        return False
    buffer = app.producer.buffer
    if buffer.size > buffer.max_messages:
        return False
    return not any(topic.queue.full() for topic in app.topics._topics)


async def _wait_first(self: Any, *coros: Any, timeout: Any = None) -> Any:
    if (
        len(coros) == 2
        and timeout is None
        and inspect.iscoroutine(coros[0])
        and _is_wait_of(coros[1], self.suspend_flow)
        and delivery_cannot_wait(self)
    ):
        coros[1].close()  # never started: nothing to cancel
        result = await coros[0]
        return WaitResults([coros[0]], [result], False)
    return await _original(self, *coros, timeout=timeout)


def install(enabled: bool = True) -> None:
    """Direct delivery on (``REWARDS_DIRECT_DELIVERY``, default) or Faust's own path."""
    Consumer.wait_first = _wait_first if enabled else _original  # type: ignore[method-assign]


def installed() -> bool:
    return Consumer.wait_first is _wait_first
