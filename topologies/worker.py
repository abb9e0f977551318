"""Start one worker process: validate rules, make sure topics exist, run Faust.

Local table state is trusted only after a clean stop (see ``prepare_state_dir``).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import faust

from agents import guard
from rewards.rulebook import load_rules
from topologies import topics
from topologies.admin import ensure_topics, wait_for_broker
from topologies.app import build_app
from topologies.settings import Settings

log = logging.getLogger(__name__)

#: Written when the worker stops cleanly, removed when it starts.
CLEAN_MARK = "CLEAN_SHUTDOWN"


def prepare_state_dir(data_dir: Path) -> bool:
    """Discard local table state left by a crash; return True if it was discarded.

    Why: after a kill -9 the local rocksdict store can be *ahead* of the
    changelog (a write lands locally at once; its changelog record is still in
    the producer's buffer). On restart Faust replays the changelog from the
    last acknowledged offset over that store, which puts back the older
    version of any key whose newer version never reached the broker, while
    keys not in that range (our progress marks among them) keep their newer
    local value. The store is then a mix of two moments: events marked done
    but with their cap counters or payment records rolled back. Measured in
    the chaos suite: a user's daily cap exceeded by the coins of an event
    whose head update was rolled back. The changelog alone is always a
    consistent prefix (one partition, written in order, progress marks last),
    so after an unclean stop we recover from it alone, like Kafka Streams
    wiping its stores when no checkpoint file was left by a clean shutdown.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    mark = data_dir / CLEAN_MARK
    tables = [p for p in data_dir.iterdir() if p.name != CLEAN_MARK]
    discarded = False
    if tables and not mark.exists():
        for path in tables:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        discarded = True
    mark.unlink(missing_ok=True)
    return discarded


def mark_clean(data_dir: Path) -> None:
    (data_dir / CLEAN_MARK).write_text("the worker stopped cleanly; local state is trusted\n")


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


def run_worker(settings: Settings) -> int:
    book = load_rules(settings.rules_file)  # RulesError stops startup, naming the field
    if settings.create_topics:
        servers = settings.bootstrap_list()
        wait_for_broker(servers)
        wanted = {topics.TRANSACTIONS: settings.input_partitions}
        wanted.update({name: settings.partitions for name in topics.OUTPUTS})
        ensure_topics(servers, wanted, settings.replication_factor)
    discarded = prepare_state_dir(settings.data_dir)
    note = " (left by an unclean stop: discarded, recovering from the changelog)"
    print(
        f"upi-rewards worker: rules {book.version!r} ({len(book.spec.rules)} rules, "
        f"tz {book.spec.timezone}), brokers {settings.kafka_bootstrap_servers}, "
        f"state in {settings.data_dir}{note if discarded else ''}, metrics on "
        f"http://{settings.web_host}:{settings.web_port}/metrics",
        flush=True,
    )
    app = build_app(settings, book)
    worker = _Worker(app, loglevel=settings.log_level, quiet=True)
    try:
        worker.execute_from_commandline()  # returns only via SystemExit
    except SystemExit as exit_:
        if exit_.code in (None, 0):
            mark_clean(settings.data_dir)
        raise
    return 0
