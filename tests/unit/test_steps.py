"""A stage's take committed in steps of ``max_events`` (``agents.checkpoint.commit_in_steps``)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from agents.checkpoint import Pack, StageBatch, commit_in_steps
from agents.context import StageTopics
from agents.decide import DecideBatch
from agents.metrics import Metrics
from agents.partitioning import Partitioner, partition_for
from agents.store import MemoryStore
from rewards.state import decode_user, user_key
from schemas.packed import encode_pack
from schemas.routed import RoutedTransaction
from tests.unit.helpers import book, txn

USER = "ravi.kumar@okaxis"  # the payer of tests.unit.helpers.txn
TOPICS = StageTopics("by-payer", "grants", "decisions", "alerts", "dead-letters")


class Recorder:
    """A ``Sender`` that acknowledges at once and logs every record in send order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes | None]] = []
        self._next: dict[tuple[str, int], int] = defaultdict(int)

    async def partitioner(self, topic: str) -> Partitioner:
        return Partitioner(4)

    async def send_records(self, topic: str, p: int, records: Any) -> Any:
        base = self._next[(topic, p)]
        self._next[(topic, p)] += len(records)
        self.log.extend((topic, value) for _, value in records)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(offset=base))
        return [(fut, len(records))]


def _pack(offset: int, *txn_ids: str) -> Pack:
    items = [
        RoutedTransaction(
            txn=txn(txn_id=t, amount_paise=5_000_00), source=f"f:0:{offset * 10 + i}", ingested_ns=0
        )
        .model_dump_json()
        .encode()
        for i, t in enumerate(txn_ids)
    ]
    return partition_for(USER.encode(), 4), offset, "by-payer", encode_pack(items)


def _run(max_events: int) -> tuple[list[tuple[str, str]], MemoryStore]:
    """Three packs of two events; the third resends T1, decided in the first pack."""
    store = MemoryStore("state-changelog")
    sender = Recorder()
    batch = DecideBatch(sender, store, TOPICS, book(), Metrics(CollectorRegistry()))
    packs = [_pack(1, "T1", "T2"), _pack(2, "T3", "T4"), _pack(3, "T1", "T5")]
    asyncio.run(commit_in_steps(batch, packs, max_events))
    log = []
    for topic, value in sender.log:
        if topic == "decisions":
            doc = orjson.loads(value or b"")
            log.append((topic, f"{doc['txn_id']}={doc['outcome']}"))
        elif topic == store.changelog_topic:
            log.append((topic, ",".join(sorted(decode_user(value).txns))))
    return log, store


def test_a_take_commits_once_without_a_budget() -> None:
    log, _ = _run(0)
    changelog = [entry for entry in log if entry[0] == "state-changelog"]
    assert changelog == [("state-changelog", "T1,T2,T3,T4,T5")]
    outcomes = [v for t, v in log if t == "decisions"]
    assert outcomes == [
        "T1=GRANTED",
        "T2=GRANTED",
        "T3=GRANTED",
        "T4=GRANTED",
        "T1=DUPLICATE",
        "T5=GRANTED",
    ]


def test_a_take_commits_in_steps_and_each_step_sees_the_last() -> None:
    log, store = _run(3)
    # The first step ends at the pack boundary past 3 events (4), the second at the end:
    # each step's decisions are sent before its changelog record, and both before the next
    # step's; the second step sees the first's record (T1 is a duplicate).
    assert log == [
        ("decisions", "T1=GRANTED"),
        ("decisions", "T2=GRANTED"),
        ("decisions", "T3=GRANTED"),
        ("decisions", "T4=GRANTED"),
        ("state-changelog", "T1,T2,T3,T4"),
        ("decisions", "T1=DUPLICATE"),
        ("decisions", "T5=GRANTED"),
        ("state-changelog", "T1,T2,T3,T4,T5"),
    ]
    stored = store.get(partition_for(USER.encode(), 4), user_key(USER))
    assert sorted(decode_user(stored).txns) == ["T1", "T2", "T3", "T4", "T5"]


class Counting:
    """A ``StageBatch`` that counts: packs of ``size`` events each."""

    def __init__(self, commits: list[list[int]], size: int) -> None:
        self.commits, self.size = commits, size
        self.packs = self.events = 0
        self.offsets: list[int] = []

    async def pack(self, partition: int, offset: int, topic: str, value: bytes | None) -> None:
        self.packs += 1
        self.events += self.size
        self.offsets.append(offset)

    async def commit(self) -> None:
        self.commits.append(self.offsets)

    def following(self) -> StageBatch:
        return Counting(self.commits, self.size)


def test_steps_end_at_pack_boundaries_and_no_step_is_empty() -> None:
    def steps(n: int, size: int, max_events: int) -> list[list[int]]:
        commits: list[list[int]] = []
        packs: list[Pack] = [(0, offset, "t", b"") for offset in range(n)]
        asyncio.run(commit_in_steps(Counting(commits, size), packs, max_events))
        return commits

    assert steps(5, 500, 0) == [[0, 1, 2, 3, 4]]
    assert steps(5, 500, 1000) == [[0, 1], [2, 3], [4]]
    assert steps(4, 500, 1000) == [[0, 1], [2, 3]]  # no empty commit after the last step
    assert steps(3, 10, 1000) == [[0, 1, 2]]  # small packs: one commit, as before
    assert steps(2, 5000, 1000) == [[0], [1]]  # a pack is never split
