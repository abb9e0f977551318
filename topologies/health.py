"""Liveness, readiness and the gauges that are read from Faust at scrape time.

Consumer lag, partition assignment and table sizes are not events: they are
states of the consumer and the stores. Rather than a timer that copies them
into gauges (stale between ticks, and leaving series behind for partitions
that were revoked), a custom collector reads them when Prometheus scrapes.
The scrape runs in the worker's event loop, and everything read here is a
cached value (no broker round trip, no key scan), so a scrape costs
microseconds and cannot stall processing.

A partition's end offset is the larger of two readings: the high watermark of
the consumer's latest fetch (fresh, but frozen while Faust pauses a partition
under back pressure — exactly when lag matters) and a ListOffsets answer
refreshed every ``END_OFFSETS_EVERY_S`` by a separate client in a thread
(some brokers undercount it: workarounds/highwater.py).

``/healthz`` answers while the event loop runs (liveness: a wedged loop stops
answering and the orchestrator restarts it). ``/readyz`` answers 200 only
when the worker holds stream partitions and is neither rebalancing nor
recovering its tables: before that it decides nothing, and a rolling update
must not move on to the next worker.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View
from kafka import KafkaConsumer, TopicPartition
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agents import guard
from agents.metrics import Metrics
from topologies.security import kafka_python_options
from workarounds.stall_watch import StallWatch

log = logging.getLogger(__name__)

HEALTHZ = "/healthz"
END_OFFSETS_EVERY_S = 10.0
READYZ = "/readyz"

#: RocksDB properties behind the table-size gauges. Both are RocksDB's own
#: estimates (no key scan): keys counted at flush/compaction time, so
#: overwrites and deletes are settled only after compaction.
KEYS_PROPERTY = "rocksdb.estimate-num-keys"
SIZE_PROPERTIES = ("rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables")


def build_labels() -> dict[str, str]:
    """Package version, git revision (``REWARDS_GIT_SHA`` wins: images have no .git)."""

    try:
        version = metadata.version("upi-rewards")
    except metadata.PackageNotFoundError:
        version = "unknown"
    revision = os.environ.get("REWARDS_GIT_SHA", "")
    if not revision:
        try:
            out = subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                cwd=Path(__file__).resolve().parent,
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
            revision = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            revision = ""
    return {
        "version": version,
        "revision": revision or "unknown",
        "python_version": platform.python_version(),
    }


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    why: str


def readiness(app: faust.App) -> Readiness:
    """Ready = stream partitions assigned, no rebalance, table recovery finished."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return Readiness(False, "consumer not started")
    if app.rebalancing:
        return Readiness(False, "rebalancing")
    recovery: Any = getattr(app.tables, "recovery", None)
    if app.in_recovery or recovery is None or not recovery.completed.is_set():
        return Readiness(False, "recovering tables")
    if not stream_partitions(app):
        return Readiness(False, "no partitions assigned")
    return Readiness(True, "ready")


def stream_partitions(app: faust.App) -> list[Any]:
    """Assigned partitions of the topics the agents read (changelogs left out)."""
    consumer = getattr(app, "_consumer", None)
    if consumer is None:
        return []
    try:
        assigned = consumer.assignment()
    except Exception:  # consumer thread not up yet
        return []
    changelogs = app.tables.changelog_topics
    # "<app id>-__assignor-__leader" is Faust's leader-election topic, not a stream.
    return sorted(
        (tp for tp in assigned if tp.topic not in changelogs and "__assignor" not in tp.topic),
        key=lambda tp: (tp.topic, tp.partition),
    )


class EndOffsets:
    """End offsets by ListOffsets, from a blocking kafka-python client run in a thread."""

    def __init__(self, bootstrap: list[str]) -> None:
        self.bootstrap = bootstrap
        self.latest: dict[tuple[str, int], int] = {}
        self._client: KafkaConsumer | None = None

    def refresh(self, tps: list[tuple[str, int]]) -> None:
        if not tps:
            self.latest = {}
            return
        if self._client is None:
            self._client = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                **kafka_python_options(),
            )
        ends = self._client.end_offsets([TopicPartition(t, p) for t, p in tps])
        self.latest = {(tp.topic, tp.partition): int(off) for tp, off in ends.items()}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class WorkerCollector(Collector):
    """Scrape-time gauges: consumer lag per partition, assignment, readiness, tables.

    Labels: ``topic`` (the input and internal re-keyed topics: fixed by the
    app id), ``partition`` (bounded by the partition count), ``table`` (two
    names). Every family is always yielded, empty when there is no app, so
    the metric names exist from the first scrape (dashboards, tests).
    """

    def __init__(
        self,
        app: faust.App | None,
        ends: EndOffsets | None = None,
        edge_lag: Callable[[], dict[tuple[str, int], int]] | None = None,
        transactional: bool = False,
    ) -> None:
        self.app = app
        self.ends = ends
        #: the ingest edge reads the feed with its own consumer (agents.edge)
        self.edge_lag = edge_lag
        #: exactly_once: the offsets are committed in the stages' transactions, which
        #: Faust does not see; the fetch position (past the markers) stands in for them
        self.transactional = transactional

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag, assigned, ready, keys, size = self._families()
        app = self.app
        if app is not None:
            tps = stream_partitions(app)
            consumer: Any = getattr(app, "_consumer", None)
            per_topic: dict[str, int] = {}
            for tp in tps:
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
                fetched = _safe(lambda tp=tp: consumer.highwater(tp))
                listed = self.ends.latest.get((tp.topic, tp.partition)) if self.ends else None
                known = [v for v in (fetched, listed) if isinstance(v, int) and v >= 0]
                if not known:
                    continue  # neither a fetch response nor ListOffsets yet
                end = max(known)
                committed = getattr(consumer, "_committed_offset", {}).get(tp)
                # No commit yet: the group starts from the earliest offset.
                start = committed if committed is not None and committed >= 0 else 0
                if self.transactional:
                    start = max(start, _safe(lambda tp=tp: _fetch_position(consumer, tp)) or 0)
                lag.add_metric([tp.topic, str(tp.partition)], max(end - start, 0))
            for (topic, partition), behind in sorted((_safe(self.edge_lag) or {}).items()):
                per_topic[topic] = per_topic.get(topic, 0) + 1
                lag.add_metric([topic, str(partition)], behind)
            for topic, n in sorted(per_topic.items()):
                assigned.add_metric([topic], n)
            ready.add_metric([], 1.0 if readiness(app).ready else 0.0)
            for name, table in sorted(app.tables.items()):
                n_keys, n_bytes = _table_size(table)
                keys.add_metric([name], n_keys)
                size.add_metric([name], n_bytes)
        yield from (lag, assigned, ready, keys, size)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "rewards_consumer_lag_messages",
                "Messages between this worker's committed offset and the partition's end "
                "offset (from the latest fetch), per assigned input/internal partition.",
                labels=["topic", "partition"],
            ),
            GaugeMetricFamily(
                "rewards_assigned_partitions",
                "Stream partitions (changelogs excluded) assigned to this worker, per topic.",
                labels=["topic"],
            ),
            GaugeMetricFamily(
                "rewards_worker_ready",
                "1 when /readyz would answer 200: partitions assigned, not rebalancing, "
                "tables recovered.",
            ),
            GaugeMetricFamily(
                "rewards_table_keys",
                f"Keys in this worker's partitions of a state table (RocksDB {KEYS_PROPERTY}).",
                labels=["table"],
            ),
            GaugeMetricFamily(
                "rewards_table_size_bytes",
                "Bytes of this worker's partitions of a state table: SST files plus "
                "memtables (RocksDB estimates).",
                labels=["table"],
            ),
        )


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:
        return None


def _table_size(table: Any) -> tuple[int, int]:
    """Sum RocksDB's estimates over the partition stores this worker has open."""
    store = getattr(table, "_data", None)
    dbs = getattr(store, "_dbs", None) or {}
    keys = size = 0
    for db in list(dbs.values()):
        keys += _safe(lambda db=db: db.property_int_value(KEYS_PROPERTY)) or 0
        for prop in SIZE_PROPERTIES:
            size += _safe(lambda db=db, prop=prop: db.property_int_value(prop)) or 0
    return keys, size


def _fetch_position(consumer: Any, tp: Any) -> int | None:
    """The aiokafka consumer's fetch position of ``tp`` (past transaction markers), if known."""
    aio = consumer._thread._consumer
    state = aio._subscription.subscription.assignment.state_value(tp)
    return None if state is None else int(state.position)


def _watch_streams(
    app: faust.App, ends: EndOffsets, watch: StallWatch, transactional: bool = False
) -> None:
    if not readiness(app).ready:
        watch.reset()
        return
    consumer: Any = getattr(app, "_consumer", None)
    committed_by_tp = getattr(consumer, "_committed_offset", {})
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    for tp in stream_partitions(app):
        fetched = _safe(lambda tp=tp: consumer.highwater(tp))
        listed = ends.latest.get((tp.topic, tp.partition))
        known = [v for v in (fetched, listed) if isinstance(v, int) and v >= 0]
        if not known:
            continue
        committed = committed_by_tp.get(tp) or 0
        if transactional:
            # The end is a commit marker's offset + 1, which no record (and so no
            # committed offset) ever reaches: a partition read past it has moved.
            fetched_to = _safe(lambda tp=tp: _fetch_position(consumer, tp))
            committed = max(committed, fetched_to or 0)
        positions[(tp.topic, tp.partition)] = (committed, max(known))
    stalled = watch.check(positions)
    if stalled is not None:
        guard.fail_stop("streams", stalled)


def install(
    app: faust.App,
    metrics: Metrics,
    rules_version: str,
    bootstrap: list[str] | None = None,
    edge_lag: Callable[[], dict[tuple[str, int], int]] | None = None,
    stall_restart_s: float = 0.0,
    transactional: bool = False,
) -> None:
    """Add /healthz, /readyz, the scrape-time collector and the info gauges.

    ``stall_restart_s`` > 0: fail-stop (re-execute) when an assigned stream
    partition is behind and has not moved for that long (``agents.StallWatch``);
    ``transactional`` (exactly_once): a partition fetched past its last
    transaction marker is not behind.
    """
    metrics.set_info(rules_version, build_labels())
    metrics.reexecutions.set(guard.reexecutions())
    ends = EndOffsets(bootstrap) if bootstrap else None
    metrics.registry.register(WorkerCollector(app, ends, edge_lag, transactional))

    watch = StallWatch(stall_restart_s) if stall_restart_s > 0 else None
    if ends is not None:

        @app.timer(interval=END_OFFSETS_EVERY_S, name="rewards-end-offsets")  # type: ignore[untyped-decorator]
        async def refresh_end_offsets() -> None:
            tps = [(tp.topic, tp.partition) for tp in stream_partitions(app)]
            try:
                await asyncio.get_running_loop().run_in_executor(None, ends.refresh, tps)
            except Exception as exc:  # a metric must never take the worker down
                log.warning("end offsets refresh failed: %s", type(exc).__name__)
                return
            if watch is not None:
                _watch_streams(app, ends, watch, transactional)

    @app.page(HEALTHZ)
    async def healthz(view: View, request: Request) -> Response:
        return view.text("ok\n")

    @app.page(READYZ)
    async def readyz(view: View, request: Request) -> Response:
        state = readiness(app)
        return view.text(state.why + "\n", status=200 if state.ready else 503)
