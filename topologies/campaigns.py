"""``upi-rewards rules publish|list``: versions of the rules on ``rewards.rules``.

The topic is compacted, one partition, keyed by ``version``; a record's value
is the rules file as JSON (``agents.rules_feed.encode_version``). Versions are
immutable: ``publish`` refuses another file under a version already on the
topic (exit 2, saying why), and the same file again is a no-op (exit 0). An
``effective_from`` before now is refused unless ``--backfill`` is given (a
replay, a test): the events of that time may be decided already
(docs/operations.md, "Rolling out a campaign").
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from agents.rules_feed import LiveRules, decode_version, encode_version
from rewards.errors import RulesError
from rewards.rulebook import RuleBook, load_rules
from rewards.versions import RuleVersions
from topologies import topics
from topologies.admin import ensure_topics, producer, wait_for_broker

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
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
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


def _now() -> datetime:
    return datetime.now(UTC)


def publish(
    path: Path, bootstrap: list[str], backfill: bool = False, now: Callable[[], datetime] = _now
) -> tuple[int, str]:
    """Publish a rules file as a version: (exit code, what happened)."""
    try:
        book = load_rules(path)
    except RulesError as exc:
        return 2, f"error: {exc}"
    spec = book.spec
    if spec.effective_from is None:
        return 2, (
            f"error: rules file {path}: effective_from: required to publish a version "
            "(RFC 3339 with an offset, e.g. 2026-12-01T00:00:00+05:30)"
        )
    moment = now()
    if spec.effective_from < moment and not backfill:
        return 2, (
            f"error: rules file {path}: effective_from: {spec.effective_from.isoformat()} is "
            f"before now ({moment.isoformat(timespec='seconds')}); events of that time may be "
            "decided already: give --backfill to publish it anyway (replays, tests)"
        )
    wait_for_broker(bootstrap)
    ensure_rules_topic(bootstrap)
    known = read_rules_log(bootstrap).books()
    same = known.get(spec.version)
    if same is not None:
        if same.spec == spec:
            return 0, f"no-op: version {spec.version!r} is on {topics.RULES} already, the same"
        return 2, (
            f"error: version {spec.version!r} is on {topics.RULES} already with other "
            "contents; versions are immutable: publish the change under a new version"
        )
    if known:
        ordered = sorted(known.values(), key=_start)
        try:
            RuleVersions.of(ordered[0], ordered[1:]).check(book)
        except RulesError as exc:
            return 2, f"error: {exc}"
    prod = producer(bootstrap)
    try:
        prod.send(topics.RULES, key=spec.version.encode(), value=encode_version(book)).get(30)
        prod.flush()
    finally:
        prod.close()
    return 0, (
        f"published version {spec.version!r} to {topics.RULES}: in force for events from "
        f"{spec.effective_from.isoformat()}"
    )


def _start(book: RuleBook) -> datetime:
    return book.spec.effective_from or datetime.min.replace(tzinfo=UTC)


def list_lines(bootstrap: list[str], now: Callable[[], datetime] = _now) -> list[str]:
    """The versions on the topic by effective_from, and which is in force now."""
    wait_for_broker(bootstrap)
    ensure_rules_topic(bootstrap)
    books = sorted(read_rules_log(bootstrap).books().values(), key=_start)
    if not books:
        return [f"no versions on {topics.RULES}: workers decide with their --rules file"]
    moment = now()
    started = [b for b in books if b.spec.effective_from and b.spec.effective_from <= moment]
    current = started[-1].version if started else None
    lines = [f"{'VERSION':<32} {'EFFECTIVE_FROM':<32} RULES  DAILY  MONTHLY"]
    for b in books:
        start = b.spec.effective_from.isoformat() if b.spec.effective_from else "-"
        mark = "  <- in force now" if b.version == current else ""
        lines.append(
            f"{b.version:<32} {start:<32} {len(b.spec.rules):>5}  {_cap(b.daily_cap):>5}  "
            f"{_cap(b.monthly_cap):>7}{mark}"
        )
    if current is None:
        lines.append("none in force yet: workers decide with their --rules file")
    return lines


def _cap(value: int | None) -> str:
    return "-" if value is None else str(value)


def cmd_publish(path: Path, bootstrap: list[str], backfill: bool) -> int:
    try:
        code, message = publish(path, bootstrap, backfill)
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"error: broker {','.join(bootstrap)}: {exc}", file=sys.stderr)
        return 1
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def cmd_list(bootstrap: list[str]) -> int:
    try:
        lines = list_lines(bootstrap)
    except (KafkaError, TimeoutError, OSError) as exc:
        print(f"error: broker {','.join(bootstrap)}: {exc}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0
