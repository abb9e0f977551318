"""Move the ingest edge's consumer group back on the input topic, to replay the feed.

Replays are harmless by design (docs/design.md): the edge re-forwards a message
with the same feed coordinates, decide recognises it by the user's replay marks
and skips it (``rewards_replays_skipped_total``); anything not yet finished is
decided with the same deterministic grant/alert ids. Only the input topic is
moved: the internal re-keyed topics and changelogs keep their offsets.

Kafka only lets a group's offsets change while the group has no members, so
stop every worker first; this refuses to run otherwise.

    python -m tools.replay --bootstrap HOST:PORT --to-earliest
    python -m tools.replay --bootstrap HOST:PORT --to-offset 120000 --partition 3
    python -m tools.replay --bootstrap HOST:PORT --to-time 2026-11-26T09:00:00+05:30
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from topologies import topics
from topologies.security import kafka_python_options
from topologies.settings import Settings
from workarounds.group_admin import GroupAdmin


class GroupNotEmpty(RuntimeError):
    """The group still has members: their next commit would undo the reset."""


def reset_offsets(
    bootstrap: list[str],
    group: str,
    topic: str = topics.TRANSACTIONS,
    *,
    offset: int | None = None,
    timestamp_ms: int | None = None,
    partitions: Sequence[int] | None = None,
    force: bool = False,
) -> dict[int, int]:
    """Set the group's committed offsets on ``topic``; return {partition: new offset}.

    ``offset`` None and ``timestamp_ms`` None mean the earliest offset. An
    offset beyond a partition's end is clamped to the end. ``force`` skips the
    membership check, for when every worker is known to be stopped but the
    broker still lists one (the broker has the last word: Tansu 0.6 keeps a
    departed member in a Stable group and refuses the commit with
    UNKNOWN_MEMBER_ID; real Kafka expires it after the session timeout).
    """
    admin = GroupAdmin(bootstrap_servers=bootstrap, **kafka_python_options())
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **kafka_python_options())
    try:
        info = admin.describe_groups([group]).get(group) or {}
        members = info.get("members") or []
        if members and not force:
            raise GroupNotEmpty(f"group {group!r} has {len(members)} members; stop the workers")
        all_parts = sorted(consumer.partitions_for_topic(topic) or ())
        chosen = [p for p in all_parts if partitions is None or p in partitions]
        tps = [TopicPartition(topic, p) for p in chosen]
        begin = consumer.beginning_offsets(tps)
        end = consumer.end_offsets(tps)
        targets: dict[TopicPartition, int] = {}
        if timestamp_ms is not None:
            found = consumer.offsets_for_times({tp: timestamp_ms for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                targets[tp] = hit.offset if hit is not None else end[tp]
        else:
            for tp in tps:
                want = begin[tp] if offset is None else offset
                targets[tp] = min(max(want, begin[tp]), end[tp])
        commits = {tp: OffsetAndMetadata(off, "", -1) for tp, off in targets.items()}
        result = admin.alter_group_offsets(group, commits)
        failed = {tp: err for tp, err in result.items() if getattr(err, "errno", 0)}
        if failed:
            raise RuntimeError(f"offset reset failed: {failed}")
        return {tp.partition: off for tp, off in targets.items()}
    finally:
        consumer.close()
        admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.replay", description=__doc__)
    p.add_argument("--bootstrap", help="default: REWARDS_KAFKA_BOOTSTRAP_SERVERS")
    p.add_argument(
        "--group", help="consumer group (default: the ingest edge's, <REWARDS_APP_ID>-ingest)"
    )
    p.add_argument("--topic", default=topics.TRANSACTIONS)
    p.add_argument("--partition", type=int, action="append", help="repeatable; default all")
    p.add_argument(
        "--force",
        action="store_true",
        help="skip the 'group has no members' check (brokers that keep stale members)",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--to-earliest", action="store_true")
    where.add_argument("--to-offset", type=int)
    where.add_argument("--to-time", type=datetime.fromisoformat, help="ISO 8601 with offset")
    args = p.parse_args(argv)
    settings = Settings(
        **{"kafka_bootstrap_servers": args.bootstrap} if args.bootstrap else {},
    )
    stamp = int(args.to_time.timestamp() * 1000) if args.to_time else None
    try:
        moved = reset_offsets(
            settings.bootstrap_list(),
            args.group or topics.Internal(settings.app_id).edge_group,
            args.topic,
            offset=args.to_offset,
            timestamp_ms=stamp,
            partitions=args.partition,
            force=args.force,
        )
    except GroupNotEmpty as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for partition, offset in sorted(moved.items()):
        print(f"{args.topic}[{partition}] -> {offset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
