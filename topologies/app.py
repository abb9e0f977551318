"""Wire the Faust app: topics, the state table, which agents run together, /metrics."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

import faust
import mode
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from faust.web.base import BlueprintManager
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.checkpoint import faust_sender
from agents.circular import attach_circular
from agents.context import StageContext, StageTopics
from agents.decide import CommitView, attach_decide
from agents.edge import Edge, EdgeConfig
from agents.metrics import Metrics
from agents.rules_feed import LiveRules, RulesFollower
from agents.store import FaustTableStore
from agents.transactions import TransactionalSender, transactional_id
from rewards.rulebook import RuleBook
from topologies import api, health, topics
from topologies.security import KafkaSecurity
from topologies.settings import Settings
from workarounds import drain, fetch_wait, highwater, read_committed
from workarounds.continuity import GapProbe

#: The file in the data dir naming the worker in its transactional ids.
WORKER_ID_FILE = "worker-id"


def worker_id(data_dir: Path) -> str:
    """This data dir's worker id, made once: a worker restarted on its data dir reuses
    its ``transactional_id``s, so its producers fence their predecessors at once."""
    path = data_dir / WORKER_ID_FILE
    try:
        found = path.read_text().strip()
    except FileNotFoundError:
        found = ""
    if not found:
        data_dir.mkdir(parents=True, exist_ok=True)
        found = uuid.uuid4().hex[:16]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(found + "\n")
        tmp.replace(path)
    return found


def build_app(
    settings: Settings,
    book: RuleBook,
    metrics: Metrics | None = None,
    live: LiveRules | None = None,
    rules_start: Mapping[int, int] | None = None,
) -> faust.App:
    """One worker process: the ingest edge, then the decide and circular agents.

    ``book`` is the first version of the rules; ``live`` the versions known at
    start-up (read from ``rewards.rules`` up to ``rules_start``), followed from
    there while the worker runs. Without them, the topic is followed from its start.
    """
    internal = topics.Internal(settings.app_id)
    security = KafkaSecurity()  # REWARDS_KAFKA_*: TLS and SASL for every client
    highwater.install(security.aiokafka())
    fetch_wait.install(settings.fetch_max_wait_ms)
    drain.install(settings.direct_delivery)
    exactly_once = settings.processing_guarantee == "exactly_once"
    if exactly_once:  # the stages' own transactions; Faust stays at_least_once
        read_committed.install(security.aiokafka())
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_list()],
        broker_credentials=security.faust_credentials(),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # exactly_once is the stages' own, one transaction per batch (agents.transactions):
        # Faust's is per record and per partition.
        processing_guarantee="at_least_once",
        table_standby_replicas=settings.table_standby_replicas,
        # exactly_once: a store may be ahead of what read_committed shows of its
        # changelog (workarounds/read_committed.py), which Faust's check calls corrupt.
        recovery_consistency_check=not exactly_once,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        broker_max_poll_records=settings.max_poll_records,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        web_enabled=True,
        # Faust's own views read tables, routes and stats with no authentication
        # (``/table/<name>/<key>/`` returned a user's raw record): all off. The
        # port serves /metrics, /healthz, /readyz and the token-guarded /v1 API.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        web_bind=settings.web_host,
        web_host=settings.advertised_host(),
        web_port=settings.web_port,
    )
    metrics = metrics or Metrics()
    live = live or LiveRules(book)
    live.attach(metrics)
    by_payer = app.topic(
        internal.by_payer,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    # Faust's RocksDB defaults (64 MB write buffer x3, 2 GiB block cache) are
    # per partition store: 8 partitions x 2 tables could hold GBs before a
    # flush. Bounded here so memory scales predictably (docs/operations.md).
    store_options = {
        "driver": "rocksdict",
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024**2,
        "max_write_buffer_number": 2,
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024**2,
    }
    state = app.Table(
        internal.state_table,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=store_options,
    )
    me = worker_id(settings.data_dir) if exactly_once else ""
    txn_timeout_ms = settings.transaction_timeout_s * 1000

    def transactional(stage: str) -> TransactionalSender:
        return TransactionalSender(
            settings.bootstrap_list(),
            transactional_id(settings.app_id, stage, me),
            settings.app_id,  # the agents' consumer group is the app's
            security.aiokafka(),
            txn_timeout_ms,
            settings.producer_linger_ms,
        )

    stage_senders = (
        {"decide": transactional("decide"), "circular": transactional("circular")}
        if exactly_once
        else {}
    )
    gap_probe = GapProbe(settings.bootstrap_list(), security.aiokafka())
    ctx = StageContext(
        app=app,
        sender=faust_sender(app),
        stage_senders=stage_senders,
        gap_probe=gap_probe,
        metrics=metrics,
        topics=StageTopics(
            by_payer=internal.by_payer,
            grants=topics.COIN_GRANTS,
            decisions=topics.DECISIONS,
            alerts=topics.FRAUD_ALERTS,
            dead_letters=topics.DEAD_LETTERS,
        ),
        partitions=settings.partitions,
        batch_max=settings.pack_batch_max,
        within_s=settings.batch_within_ms / 1000,
        batch_events=settings.batch_events,
    )
    circular_ms = book.fraud.circular_ms
    if circular_ms is not None:
        by_pair = app.topic(
            internal.by_pair,
            partitions=settings.partitions,
            internal=True,
            key_serializer="raw",
            value_serializer="raw",
        )
        pairs = app.Table(
            internal.pair_table,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            options=store_options,
        )
        attach_circular(ctx, by_pair, FaustTableStore(pairs), circular_ms, book.fraud.pair_late_ms)
    committing = CommitView()
    state_store = FaustTableStore(state)
    attach_decide(
        ctx,
        by_payer,
        state_store,
        lambda: live.versions,
        cache_users=settings.state_cache_users,
        view=committing,
    )
    edge = Edge(
        EdgeConfig(
            bootstrap=settings.bootstrap_list(),
            client_options=security.aiokafka(),
            group=internal.edge_group,
            feed=topics.TRANSACTIONS,
            by_payer=internal.by_payer,
            by_pair=internal.by_pair if circular_ms is not None else None,
            dead_letters=topics.DEAD_LETTERS,
            partitions=settings.partitions,
            max_records=settings.batch_max,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fill_ms=settings.batch_within_ms,
            session_timeout_ms=settings.session_timeout_s * 1000,
            rebalance_timeout_ms=settings.rebalance_timeout_s * 1000,
            linger_ms=settings.producer_linger_ms,
            gaps=settings.feed_offset_gaps,
            transactional_id=transactional_id(settings.app_id, "ingest", me)
            if exactly_once
            else None,
            transaction_timeout_ms=txn_timeout_ms,
        ),
        metrics,
    )

    follower = RulesFollower(
        settings.bootstrap_list(),
        topics.RULES,
        live,
        rules_start,
        client_options=security.aiokafka(),
    )

    @app.service
    class FollowRules(mode.Service):
        """New versions of the rules while the worker runs (``agents.rules_feed``)."""

        async def on_start(self) -> None:
            await follower.start()

        async def on_stop(self) -> None:
            await follower.stop()

    @app.service
    class IngestEdge(mode.Service):
        """Starts with the app (after table recovery), stops before the producer."""

        async def on_start(self) -> None:
            await edge.start()

        async def on_stop(self) -> None:
            await edge.stop()

    @app.service
    class StageProducers(mode.Service):
        """The stages' transactional producers (exactly_once): started with the app, so
        their InitProducerId aborts what a predecessor with the same ids left open
        before the stages read (else at first use). Stopped with the gap probe."""

        async def on_start(self) -> None:
            for sender in stage_senders.values():
                await sender.start()

        async def on_stop(self) -> None:
            for sender in stage_senders.values():
                await sender.stop()
            await gap_probe.stop()

    if settings.faust_sensors:
        setup_prometheus_sensors(app, pattern="/metrics")
    else:
        # Faust's Prometheus monitor adds label work on every message (~5% of
        # a worker's time, py-spy); our metrics (agents/metrics.py) are enough,
        # so the default monitor stays and /metrics serves our registry alone.
        @app.page("/metrics")
        async def metrics_page(view: View, request: Request) -> Response:
            body = generate_latest(metrics.registry)
            return view.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    # With every flag off Faust still mounts its index page at "/": no built-in view at all.
    app.web.blueprints = BlueprintManager([])

    def ready() -> tuple[bool, str]:
        state = health.readiness(app)
        return state.ready, state.why

    api.install(
        app,
        book=book,
        tokens_file=settings.api_tokens_file,
        rate=settings.api_rate_limit,
        partitions=settings.partitions,
        by_payer=internal.by_payer,
        table=internal.state_table,
        read=committing.reader(state_store.get),
        metrics=metrics,
        ready=ready,
        forward_timeout_s=settings.api_forward_timeout_s,
    )
    health.install(
        app,
        metrics,
        book.version,
        settings.bootstrap_list(),
        edge.lag,
        stall_restart_s=settings.stall_restart_s,
        transactional=exactly_once,
    )
    live.refresh_metrics()  # every version known, after install's single one
    return app
