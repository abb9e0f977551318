"""The rules versions a worker knows, and the task that follows ``rewards.rules``.

The worker reads the topic to its end before it starts deciding
(``tools.campaigns.read_rules_log``), then this follower keeps reading
from there: a new version joins ``LiveRules.versions`` (an immutable
``RuleVersions``, swapped whole), and the decide stage takes the current one
at the start of each batch. A record that is not a valid rules file, or a
version that cannot join (``rewards.versions``: other contents under a known
version, another timezone or fraud section), is logged by version and offset
and left out; the worker goes on with the versions it has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from agents.metrics import Metrics
from rewards.errors import RulesError
from rewards.rulebook import RuleBook, parse_rules
from rewards.versions import RuleVersions

log = logging.getLogger(__name__)


def encode_version(book: RuleBook) -> bytes:
    """A version's record value on ``rewards.rules``: the rules file as JSON."""
    return orjson.dumps(book.spec.model_dump(mode="json", exclude_none=True))


def decode_version(value: bytes | None, where: str = "rewards.rules") -> RuleBook:
    """Parse a record of ``rewards.rules``; RulesError names the field."""
    if value is None:
        raise RulesError(f"{where}: empty record (a tombstone): versions are never deleted")
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RulesError(f"{where}: not JSON ({exc})") from None
    return parse_rules(data, where)


class LiveRules:
    """The versions known now; ``offer`` adds one read from the topic."""

    def __init__(self, first: RuleBook, metrics: Metrics | None = None) -> None:
        self.versions = RuleVersions.of(first)
        self.metrics = metrics
        self.refused = 0
        self.refresh_metrics()

    def attach(self, metrics: Metrics) -> None:
        """Report to ``metrics`` from now on, counting the records left out so far."""
        self.metrics = metrics
        metrics.rules_refused.inc(self.refused)
        self.refresh_metrics()

    def offer(self, value: bytes | None, where: str) -> bool:
        """Add the version in a record (``where``: topic:partition:offset); False if left out."""
        try:
            book = decode_version(value, where)
            before = self.versions
            self.versions = before.add(book)
        except RulesError as exc:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.rules_refused.inc()
            log.error("rules version left out: %s", exc)
            return False
        if self.versions is not before:
            start = book.spec.effective_from
            log.warning(
                "rules version %r known from %s: in force from %s",
                book.version,
                where,
                start.isoformat() if start else "-",
            )
            self.refresh_metrics()
        return True

    def refresh_metrics(self, now: datetime | None = None) -> None:
        if self.metrics is not None:
            versions = self.versions
            at = now or datetime.now(UTC)
            self.metrics.set_rules([b.version for b in versions.books], versions.at(at).version)


class RulesFollower:
    """Read ``rewards.rules`` from the given offsets on, for as long as the worker runs."""

    def __init__(
        self,
        bootstrap: list[str],
        topic: str,
        live: LiveRules,
        start: Mapping[int, int] | None = None,
        poll_ms: int = 1000,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap, self.topic, self.live = bootstrap, topic, live
        #: TLS/SASL keyword arguments for the aiokafka consumer (``topologies.security``)
        self.client_options = dict(client_options or {})
        self.start_at = dict(start or {})
        self.poll_ms = poll_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="rules-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    async def _connect(self) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self.client_options,
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic)
            while not partitions:  # created by the worker at start-up; metadata may lag
                await asyncio.sleep(0.5)
                await consumer._client.force_metadata_update()
                partitions = consumer.partitions_for_topic(self.topic)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp in tps:
                if tp.partition in self.start_at:
                    consumer.seek(tp, self.start_at[tp.partition])
                else:
                    await consumer.seek_to_beginning(tp)
        except BaseException:
            await consumer.stop()
            raise
        return consumer

    async def _run(self) -> None:
        while True:
            try:
                if self._consumer is None:
                    self._consumer = await self._connect()
                fetched = await self._consumer.getmany(timeout_ms=self.poll_ms)
                for tp, records in sorted(fetched.items(), key=lambda kv: kv[0].partition):
                    for r in records:
                        self.live.offer(r.value, f"{tp.topic}:{tp.partition}:{r.offset}")
                        self.start_at[tp.partition] = r.offset + 1
                self.live.refresh_metrics()  # the version in force moves with the clock
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError) as exc:  # reconnect from where it was
                log.warning("rules follower: %s; retrying", type(exc).__name__)
                if self._consumer is not None:
                    with contextlib.suppress(Exception):
                        await self._consumer.stop()
                    self._consumer = None
                await asyncio.sleep(1.0)
