"""Start one worker process: validate rules, make sure topics exist, run Faust."""

from __future__ import annotations

import logging

import faust

from rewards.rulebook import load_rules
from topologies import topics
from topologies.admin import ensure_topics, wait_for_broker
from topologies.app import build_app
from topologies.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    book = load_rules(settings.rules_file)  # RulesError stops startup, naming the field
    if settings.create_topics:
        servers = settings.bootstrap_list()
        wait_for_broker(servers)
        wanted = {topics.TRANSACTIONS: settings.input_partitions}
        wanted.update({name: settings.partitions for name in topics.OUTPUTS})
        ensure_topics(servers, wanted, settings.replication_factor)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"upi-rewards worker: rules {book.version!r} ({len(book.spec.rules)} rules, "
        f"tz {book.spec.timezone}), brokers {settings.kafka_bootstrap_servers}, "
        f"state in {settings.data_dir}, metrics on "
        f"http://{settings.web_host}:{settings.web_port}/metrics",
        flush=True,
    )
    app = build_app(settings, book)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0
