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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from kafka.errors import KafkaError

from agents.rules_feed import encode_version
from rewards.errors import RulesError
from rewards.rulebook import RuleBook, load_rules
from rewards.versions import RuleVersions
from tools.topic_io import producer
from topologies import topics
from topologies.admin import wait_for_broker
from topologies.rules_topic import ensure_rules_topic, read_rules_log


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
