"""The rules topic at worker start-up: made if missing, read to its end before anything is
decided (``agents.rules_feed`` follows it afterwards); ``tools.campaigns`` publishes to it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition

from agents.rules_feed import LiveRules, decode_version
from rewards.errors import RulesError
from rewards.rulebook import RuleBook
from topologies import topics
from topologies.admin import ensure_topics
from topologies.security import kafka_python_options

#: Compacted: the newest record per version is kept forever (versions never change).
RULES_TOPIC_CONFIG = {"cleanup.policy": "compact"}


def ensure_rules_topic(bootstrap: list[str], replication: int = 1) -> None:
    ensure_topics(
        bootstrap, {topics.RULES: 1}, replication, configs={topics.RULES: RULES_TOPIC_CONFIG}
    )


@dataclass
class RulesLog:
    """Every record of ``rewards.rules`` up to its end when read, and where that end was."""

    records: list[tuple[str, bytes | None]] = field(default_factory=list)  # (where, value)
    end: dict[int, int] = field(default_factory=dict)  # partition -> next offset

    def books(self) -> dict[str, RuleBook]:
        """The valid versions on the topic by version (first record of a version wins)."""
        out: dict[str, RuleBook] = {}
        for where, value in self.records:
            try:
                book = decode_version(value, where)
            except RulesError:
                continue
            out.setdefault(book.version, book)
        return out


def read_rules_log(bootstrap: list[str], timeout_s: float = 60.0) -> RulesLog:
    """Read ``rewards.rules`` from its beginning to its end (as of now)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **kafka_python_options(),
    )
    try:
        parts = sorted(consumer.partitions_for_topic(topics.RULES) or ())
        deadline = time.monotonic() + timeout_s
        while not parts and time.monotonic() < deadline:  # just created: metadata may lag
            time.sleep(0.2)
            consumer.topics()  # refreshes the metadata
            parts = sorted(consumer.partitions_for_topic(topics.RULES) or ())
        tps = [TopicPartition(topics.RULES, p) for p in parts]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        log = RulesLog(end=dict(end))
        pending = {tp for tp in tps if consumer.position(tp) < end[tp.partition]}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topics.RULES} not read to its end within {timeout_s:.0f}s")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for r in batch:
                    log.records.append((f"{tp.topic}:{tp.partition}:{r.offset}", r.value))
            for tp in list(pending):
                position = consumer.position(tp)
                if position >= end[tp.partition]:
                    log.end[tp.partition] = position
                    pending.discard(tp)
        return log
    finally:
        consumer.close()


def load_live_rules(first: RuleBook, bootstrap: list[str]) -> tuple[LiveRules, dict[int, int]]:
    """The worker's versions at start-up: its ``--rules`` file, then the topic to its end."""
    ensure_rules_topic(bootstrap)
    log = read_rules_log(bootstrap)
    live = LiveRules(first)
    for where, value in log.records:
        live.offer(value, where)
    return live, log.end
