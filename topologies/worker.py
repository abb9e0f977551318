"""Start one worker process: validate rules, make sure topics exist, run Faust.

Local table state survives any stop (see ``prepare_state_dir``).
"""

from __future__ import annotations

import asyncio
import copy
import gc
import logging
import logging.config
from collections.abc import Callable
from pathlib import Path

import faust
from aiokafka import AIOKafkaProducer

import rewards
from agents import faults, guard
from agents.metrics import Metrics
from rewards.rulebook import load_rules
from topologies import topics
from topologies.admin import ensure_topics, wait_for_broker
from topologies.api import load_tokens
from topologies.app import build_app
from topologies.collector import Freezer
from topologies.logs import logging_config, resolve
from topologies.rules_topic import load_live_rules
from topologies.security import KafkaSecurity
from topologies.settings import Settings
from workarounds.seed_offsets import seed_group_offsets

log = logging.getLogger(__name__)

#: Left by workers that discarded their state after a crash; removed if found.
LEGACY_MARK = "CLEAN_SHUTDOWN"


def prepare_state_dir(data_dir: Path) -> None:
    """Make the data dir. Local table state is kept after any stop, ``kill -9`` included.

    The stateful stages write the local store only after its changelog
    records are acknowledged, with the changelog offset in the same RocksDB
    write batch (``agents.checkpoint``), so the store is never ahead of its
    changelog and Faust's recovery replays only the tail beyond that offset.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / LEGACY_MARK).unlink(missing_ok=True)


class _Worker(faust.Worker):
    """On SIGTERM/SIGINT: finish the batches in flight, then let Faust stop (``agents.guard``)."""

    def _on_sigterm(self) -> None:
        self._after_batches(super()._on_sigterm)

    def _on_sigint(self) -> None:
        self._after_batches(super()._on_sigint)

    _stopper: asyncio.Task[None] | None = None

    def _after_batches(self, stop: Callable[[], None]) -> None:
        if self._stopper is not None:  # a second signal: stop now
            stop()
            return
        guard.shutting_down()

        async def then_stop() -> None:
            await guard.drain(timeout_s=30.0)
            stop()

        self._stopper = self.loop.create_task(then_stop())


class TransactionsUnavailable(RuntimeError):
    """``exactly_once`` asked for, and the broker cannot run a transaction."""


def check_transactions(
    servers: list[str], app_id: str, client_options: dict[str, object], timeout_s: float = 20.0
) -> None:
    """Begin and abort one transaction (InitProducerId, AddPartitionsToTxn, EndTxn), or refuse
    to start: a broker without usable transactions (Tansu) would fail every batch."""

    async def probe() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            transactional_id=f"{app_id}-startup-probe",
            **client_options,
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            await producer.abort_transaction()
        finally:
            await producer.stop()

    loop = asyncio.new_event_loop()  # not asyncio.run: it unsets the loop Faust then takes
    try:
        loop.run_until_complete(asyncio.wait_for(probe(), timeout_s))
    except Exception as exc:
        raise TransactionsUnavailable(
            "processing_guarantee=exactly_once: the broker cannot run a Kafka transaction "
            f"({type(exc).__name__}: {exc}); use Apache Kafka, or at_least_once"
        ) from None
    finally:
        loop.close()


def run_worker(settings: Settings) -> int:
    book = load_rules(settings.rules_file)  # RulesError stops startup, naming the field
    security = KafkaSecurity()  # an invalid REWARDS_KAFKA_* setting stops startup, naming it
    log_config = logging_config(resolve(settings.log_format), settings.log_level)
    if log_config is not None:  # one JSON object a line from the first line on
        logging.config.dictConfig(copy.deepcopy(log_config))  # dictConfig consumes its dict
    if settings.api_tokens_file is not None:  # TokensFileError too, before any connection
        load_tokens(settings.api_tokens_file)
    if settings.create_topics:
        servers = settings.bootstrap_list()
        wait_for_broker(servers)
        wanted = {topics.TRANSACTIONS: settings.input_partitions}
        wanted.update({name: settings.partitions for name in topics.OUTPUTS})
        ensure_topics(servers, wanted, settings.replication_factor)
    servers = settings.bootstrap_list()
    internal = topics.Internal(settings.app_id)
    streams = [internal.by_payer, internal.by_pair]
    # The agents' input topics, made here so that their partitions can be given a
    # committed offset before Faust first reads them (workarounds.seed_offsets).
    wait_for_broker(servers)
    ensure_topics(servers, dict.fromkeys(streams, settings.partitions), settings.replication_factor)
    seed_group_offsets(servers, settings.app_id, streams, security.kafka_python())
    if settings.processing_guarantee == "exactly_once":
        check_transactions(servers, settings.app_id, security.aiokafka())
    # Every version on rewards.rules is known before anything is decided.
    live, rules_end = load_live_rules(book, servers)
    prepare_state_dir(settings.data_dir)
    banner = (
        f"upi-rewards worker: rules {book.version!r} ({len(book.spec.rules)} rules, "
        f"tz {book.spec.timezone}), brokers {settings.kafka_bootstrap_servers}, "
        f"state in {settings.data_dir}, metrics on "
        f"http://{settings.web_host}:{settings.web_port}/metrics; "
        f"{len(live.versions.books) - 1} later versions from {topics.RULES}; "
        f"core {'compiled (mypyc)' if rewards.COMPILED else 'pure Python'}"
    )
    if log_config is None:
        print(banner, flush=True)
    else:
        log.info(banner)
    faults.install_from_env()  # test-only (REWARDS_TEST_FAIL); nothing when unset
    gc.set_threshold(settings.gc_gen0, 10, settings.gc_gen2)
    if settings.gc_freeze_ms > 0:
        Freezer(settings.gc_freeze_ms / 1000, settings.gc_full_s).start()
    metrics = Metrics()
    metrics.watch_gc()  # this process's collections, not a test's apps
    app = build_app(settings, book, live=live, rules_start=rules_end, metrics=metrics)
    worker = _Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        logging_config=log_config,
    )
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0
