"""Wire the Faust app: topics, the state table, which agents run together, /metrics."""

from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents.circular import attach_circular
from agents.decide import attach_decide
from agents.emit import Emitter
from agents.ingest import attach_ingest
from agents.metrics import Metrics
from rewards.rulebook import RuleBook
from topologies import fetch_wait, health, highwater, topics
from topologies.settings import Settings


def build_app(settings: Settings, book: RuleBook, metrics: Metrics | None = None) -> faust.App:
    """One worker process: ingest + decide agents, sharing one consumer group."""
    internal = topics.Internal(settings.app_id)
    highwater.install()
    fetch_wait.install(settings.fetch_max_wait_ms)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_list()],
        store="rocksdb://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        producer_linger=settings.producer_linger_ms / 1000,
        broker_max_poll_records=settings.max_poll_records,
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
    )
    metrics = metrics or Metrics()
    within_s = settings.batch_within_ms / 1000
    feed = app.topic(topics.TRANSACTIONS, value_serializer="raw", key_serializer="raw")
    by_payer = app.topic(
        internal.by_payer,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    outputs = {
        name: app.topic(topic, key_serializer="raw", value_serializer="raw")
        for name, topic in (
            ("grants", topics.COIN_GRANTS),
            ("decisions", topics.DECISIONS),
            ("alerts", topics.FRAUD_ALERTS),
            ("dead_letters", topics.DEAD_LETTERS),
        )
    }
    dead_letters = outputs["dead_letters"]
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
    emit = Emitter(app, transactional=settings.processing_guarantee == "exactly_once")
    batching = (settings.batch_max, within_s)
    circular_ms = book.fraud.circular_ms
    by_pair = None
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
        attach_circular(
            app,
            emit,
            by_pair,
            pairs,
            by_payer,
            dead_letters,
            circular_ms,
            book.fraud.pair_late_ms,
            metrics,
            *batching,
        )
    attach_ingest(
        app,
        emit,
        feed,
        by_payer,
        by_pair,
        dead_letters,
        metrics,
        *batching,
        gaps=settings.feed_offset_gaps,
    )
    attach_decide(app, emit, by_payer, state, outputs, book, metrics, *batching)
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

    health.install(app, metrics, book.version, settings.bootstrap_list())
    return app
