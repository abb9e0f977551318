"""The /v1 request handling without Faust: auth, rate limit, bad input, routing."""

from __future__ import annotations

import asyncio
import time as clock_time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from agents.checkpoint import commit_in_steps
from agents.context import StageTopics
from agents.decide import CommitView, DecideBatch
from agents.metrics import Metrics
from agents.partitioning import Partitioner, partition_for
from agents.store import MemoryStore
from rewards.ledger import MemoryState, process
from rewards.state import decode_user, encode_user
from schemas.packed import encode_pack
from schemas.routed import RoutedTransaction
from tests.unit.helpers import Clock, book, txn
from topologies.api import (
    FORWARDED,
    Local,
    Owner,
    Remote,
    Reply,
    RewardsApi,
    Tokens,
    Unavailable,
    load_tokens,
    parse_at,
)

USER = "ravi.kumar@okaxis"
AUTH = {"Authorization": "Bearer tok-1"}


def make(
    owner: Owner | None = None, rate: float = 5.0, tokens: Tokens | None = None
) -> tuple[RewardsApi, list[tuple[str, str, str]], Clock]:
    rules = book(daily=120)
    state = MemoryState()
    process(txn(txn_id="T1", amount_paise=5_000_00), rules, state.user(USER))
    stored = {(partition_for(USER.encode(), 4), USER.encode()): encode_user(state[USER])}
    forwarded: list[tuple[str, str, str]] = []

    async def forward(url: str, path: str, auth: str) -> Reply:
        forwarded.append((url, path, auth))
        return Reply(200, b'{"from":"owner"}')

    clock = Clock()
    api = RewardsApi(
        rules,
        tokens if tokens is not None else Tokens([b"tok-1", b"tok-2"]),
        rate,
        4,
        lambda p: owner or Local(p),
        lambda p, k: stored.get((p, k)),
        forward,
        now=lambda: datetime(2026, 11, 25, 6, 30, tzinfo=UTC),
        clock=clock,
    )
    return api, forwarded, clock


def call(
    api: RewardsApi,
    vpa: str = USER,
    headers: Mapping[str, str] = AUTH,
    query: Mapping[str, str] | None = None,
    txn_id: str | None = None,
) -> Reply:
    endpoint = "rewards" if txn_id is None else "payment"
    params = {"vpa": vpa} if txn_id is None else {"vpa": vpa, "txn_id": txn_id}
    return asyncio.run(api.handle(endpoint, params, query or {}, headers, "/v1/x?y=1"))


def test_answers_from_the_state_case_insensitively() -> None:
    api, _, _ = make()
    reply = call(api, vpa="Ravi.Kumar@OKAXIS")
    doc = orjson.loads(reply.body)
    assert reply.status == 200
    assert (doc["user_vpa"], doc["known"], doc["day"]["coins_granted"]) == (USER, True, 50)
    assert doc["at"] == "2026-11-25T12:00:00+05:30"
    payment = call(api, txn_id="T1")
    assert payment.status == 200
    assert orjson.loads(payment.body)["coins_granted"] == 50
    missing = call(api, txn_id="T9")
    assert missing.status == 404
    assert orjson.loads(missing.body)["reason"] == "never_seen"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "tok-1"},
        {"Authorization": "Bearer "},
    ],
)
def test_no_or_wrong_token_is_401_and_says_nothing_of_the_user(headers: dict[str, str]) -> None:
    api, _, _ = make()
    reply = call(api, headers=headers)
    assert reply.status == 401
    assert b"ravi" not in reply.body
    assert orjson.loads(reply.body)["error"] == "unauthorized"


def test_no_tokens_file_turns_the_api_off() -> None:
    rules = book()

    async def never(*_: object) -> Reply:
        raise AssertionError

    api = RewardsApi(rules, None, 5, 4, Local, lambda p, k: None, never)
    assert call(api).status == 404


@pytest.mark.parametrize(
    ("vpa", "query", "txn_id", "error"),
    [
        ("no-at-sign", {}, None, "invalid_vpa"),
        (USER, {"at": "2026-11-25T10:00:00"}, None, "invalid_at"),
        (USER, {"at": "yesterday"}, None, "invalid_at"),
        (USER, {"at": "9999-12-31T23:59:59-05:00"}, None, "invalid_at"),
        (USER, {"at": "0001-01-01T00:00:00+14:00"}, None, "invalid_at"),
        (USER, {"at": "2026-02-30T10:00:00+05:30"}, None, "invalid_at"),
        (USER, {}, "bad id!", "invalid_txn_id"),
    ],
)
def test_malformed_input_is_400_with_a_reason(
    vpa: str, query: dict[str, str], txn_id: str | None, error: str
) -> None:
    api, _, _ = make()
    reply = call(api, vpa=vpa, query=query, txn_id=txn_id)
    assert (reply.status, orjson.loads(reply.body)["error"]) == (400, error)


def test_an_unencoded_plus_in_at_still_parses() -> None:
    at = parse_at("2026-11-25T10:00:00 05:30", lambda: datetime.now(UTC))
    assert at.isoformat() == "2026-11-25T10:00:00+05:30"


def test_rate_limit_per_token_is_429_past_it_and_refills() -> None:
    api, _, clock = make(rate=3)
    assert [call(api).status for _ in range(4)] == [200, 200, 200, 429]
    other = {"Authorization": "Bearer tok-2"}
    assert call(api, headers=other).status == 200  # another token has its own bucket
    clock.t += 1.0
    assert [call(api).status for _ in range(4)] == [200, 200, 200, 429]


def test_another_workers_partition_is_forwarded_with_the_token() -> None:
    api, forwarded, _ = make(owner=Remote("http://10.0.0.2:6066/"))
    reply = call(api)
    assert reply == Reply(200, b'{"from":"owner"}')
    assert forwarded == [("http://10.0.0.2:6066/", "/v1/x?y=1", "Bearer tok-1")]
    # Never forwarded twice: the owner moved meanwhile.
    again = call(api, headers={**AUTH, FORWARDED: "1"})
    assert again.status == 503
    assert len(forwarded) == 1


def test_unavailable_partition_is_503() -> None:
    api, _, _ = make(owner=Unavailable("recovering tables"))
    reply = call(api)
    assert (reply.status, orjson.loads(reply.body)["error"]) == (503, "not_ready")


def test_tokens_file_skips_blanks_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# ops\n\n  tok-a  \n#tok-b\ntok-c\n")
    assert load_tokens(path) == [b"tok-a", b"tok-c"]


def test_a_reader_sees_the_committing_batchs_records_then_the_stores() -> None:
    stored = {(1, b"a"): b"old a", (1, b"b"): b"old b", (2, b"a"): b"other a"}
    view = CommitView()
    read = view.reader(lambda p, k: stored.get((p, k)))
    assert read(1, b"a") == b"old a"
    view.begin({1: {b"a": b"new a", b"c": None}, 3: {b"d": b"new d"}})
    assert [read(1, b"a"), read(1, b"b"), read(1, b"c"), read(2, b"a"), read(3, b"d")] == [
        b"new a",  # the batch's record
        b"old b",  # same partition, not in the batch
        None,  # the batch deletes it
        b"other a",  # the same key in a partition the batch does not hold
        b"new d",
    ]
    view.end()
    assert [read(1, b"a"), read(3, b"d")] == [b"old a", None]


def test_request_metrics_have_closed_labels_without_personal_data() -> None:
    from prometheus_client import CollectorRegistry

    from agents.metrics import Metrics

    registry = CollectorRegistry()
    api, _, _ = make()
    api.metrics = Metrics(registry)
    for headers in (AUTH, {}):
        call(api, headers=headers)
        call(api, txn_id="T1", headers=headers)
        call(api, vpa="bad", headers=headers)
    found = [
        s.labels
        for m in registry.collect()
        if m.name == "rewards_api_requests"
        for s in m.samples
        if s.name == "rewards_api_requests_total"
    ]
    assert {(s["endpoint"], s["status"], s["route"]) for s in found} == {
        ("rewards", "200", "local"),
        ("payment", "200", "local"),
        ("rewards", "400", "none"),
        ("rewards", "401", "none"),
        ("payment", "401", "none"),
    }
    for labels in found:
        assert set(labels) == {"endpoint", "status", "route"}
        assert labels["endpoint"] in {"rewards", "payment"}
        assert labels["route"] in {"local", "forwarded", "none"}
        assert labels["status"].isdigit() and len(labels["status"]) == 3


def test_advertised_host_defaults() -> None:
    import socket

    from topologies.settings import Settings

    assert Settings(web_host="10.1.2.3").advertised_host() == "10.1.2.3"
    assert Settings(web_host="0.0.0.0").advertised_host() == socket.getfqdn()
    assert Settings(web_host="0.0.0.0", web_advertised_host="w-1.x").advertised_host() == "w-1.x"


def test_a_store_error_is_a_500_and_the_log_names_no_user(caplog: pytest.LogCaptureFixture) -> None:
    api, _, _ = make()

    def broken(partition: int, key: bytes) -> bytes | None:
        raise RuntimeError(f"cannot read {key!r}")

    api._read = broken
    reply = call(api)
    assert (reply.status, orjson.loads(reply.body)["error"]) == (500, "state_unreadable")
    assert caplog.records and all(USER not in r.getMessage() for r in caplog.records)
    corrupt = make()[0]
    corrupt._read = lambda partition, key: b"\x07[]"
    assert call(corrupt).status == 500


class HeldSender:
    """A ``Sender`` that acknowledges every record at once but the changelog's (on release)."""

    def __init__(self, changelog_topic: str) -> None:
        self.changelog_topic = changelog_topic
        self.decided = asyncio.Event()
        self.release = asyncio.Event()

    async def partitioner(self, topic: str) -> Partitioner:
        return Partitioner(4)

    async def send_records(self, topic: str, p: int, records: Any) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if topic == self.changelog_topic:

            async def later() -> None:
                await self.release.wait()
                fut.set_result(SimpleNamespace(offset=0))

            asyncio.get_running_loop().create_task(later())
        else:
            fut.set_result(SimpleNamespace(offset=0))
            if topic == "decisions":
                self.decided.set()
        return [(fut, len(records))]


def test_a_request_after_the_decision_is_acked_sees_the_payment_without_waiting() -> None:
    """The real decide batch and commit order, with the changelog ack held back.

    A request arriving once the batch's decision is acknowledged, but before its
    record reaches the store, sees the payment at once, from the committing batch.
    """
    rules = book()
    partition = partition_for(USER.encode(), 4)
    store = MemoryStore("state-changelog")

    async def scenario() -> tuple[int, bytes, bool, bool]:
        sender, view = HeldSender(store.changelog_topic), CommitView()
        topics_ = StageTopics("by-payer", "grants", "decisions", "alerts", "dead-letters")
        batch = DecideBatch(sender, store, topics_, rules, Metrics(CollectorRegistry()), view=view)
        event = txn(txn_id="T7", amount_paise=5_000_00)
        batch.item(partition, RoutedTransaction(txn=event, source="f:0:1", ingested_ns=0))
        committing = asyncio.create_task(batch.commit())
        await sender.decided.wait()  # the decision is emitted; the store is not written yet
        in_store_then = store.get(partition, USER.encode()) is not None

        async def forward(*_: object) -> Reply:
            raise AssertionError

        api = RewardsApi(
            rules,
            Tokens([b"tok-1"]),
            5,
            4,
            Local,
            view.reader(store.get),
            forward,
            now=lambda: datetime(2026, 11, 25, tzinfo=UTC),
            clock=clock_time.monotonic,
        )
        reply = await asyncio.wait_for(
            api.handle("payment", {"vpa": USER, "txn_id": "T7"}, {}, AUTH, "/"), 1
        )
        still_committing = not committing.done()
        sender.release.set()
        await committing
        return reply.status, reply.body, in_store_then, still_committing

    status, body, in_store_then, still_committing = asyncio.run(scenario())
    assert in_store_then is False  # the window this test is about is real
    assert still_committing  # answered while the changelog ack was still held
    assert status == 200, body
    assert orjson.loads(body)["coins_granted"] == 50


def test_a_reader_sees_the_batch_only_once_it_commits() -> None:
    """While the batch decides nothing of it is emitted: a reader sees the state before
    it. From the start of its commit a reader sees the batch's records, before the store."""
    rules = book()
    partition = partition_for(USER.encode(), 4)
    store = MemoryStore("state-changelog")
    key = USER.encode()

    def pack(txn_id: str, offset: int) -> tuple[int, int, str, bytes]:
        routed = RoutedTransaction(
            txn=txn(txn_id=txn_id, amount_paise=5_000_00), source=f"f:0:{offset}", ingested_ns=0
        )
        return partition, offset, "by-payer", encode_pack([routed.model_dump_json().encode()])

    def payments(record: bytes | None) -> list[str]:
        return [] if record is None else sorted(decode_user(record).txns)

    async def scenario() -> list[str]:
        sender, view = HeldSender(store.changelog_topic), CommitView()
        topics_ = StageTopics("by-payer", "grants", "decisions", "alerts", "dead-letters")
        batch = DecideBatch(sender, store, topics_, rules, Metrics(CollectorRegistry()), view=view)
        read = view.reader(store.get)
        seen: list[str] = []

        def reader(name: str) -> None:
            stored = store.get(partition, key) is not None
            seen.append(f"{name}: stored={stored} sees={payments(read(partition, key))}")

        decided_one = batch.pack

        async def pack_then_read(*args: Any) -> None:
            await decided_one(*args)
            if not seen:  # between the two packs: the batch holds the user already
                reader("deciding")

        batch.pack = pack_then_read  # type: ignore[method-assign,assignment]
        deciding = asyncio.create_task(commit_in_steps(batch, [pack("T7", 1), pack("T8", 2)], 0))
        committed = asyncio.create_task(sender.decided.wait())
        await asyncio.wait({deciding, committed}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if deciding.done():  # failed: the batch's own error says why
            await deciding
        assert committed.done()  # committing: decisions out, the store not written yet
        reader("committing")
        sender.release.set()
        await deciding
        reader("committed")
        return seen

    assert asyncio.run(scenario()) == [
        "deciding: stored=False sees=[]",
        "committing: stored=False sees=['T7', 'T8']",
        "committed: stored=True sees=['T7', 'T8']",
    ]


def test_a_long_commit_lets_readers_in_and_shows_them_all_of_the_batch_or_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Encoding the batch's records yields to the loop (here after every user); a reader
    that runs meanwhile sees the store's state, never part of the batch."""
    import agents.decide

    monkeypatch.setattr(agents.decide, "_SLICE_S", 0.0)
    rules = book()
    users = ["asha.k@pop", "ravi.kumar@okaxis", "meera.n@ybl"]
    store = MemoryStore("state-changelog")

    async def scenario() -> tuple[list[list[bool]], list[bool]]:
        sender, view = HeldSender(store.changelog_topic), CommitView()
        topics_ = StageTopics("by-payer", "grants", "decisions", "alerts", "dead-letters")
        batch = DecideBatch(sender, store, topics_, rules, Metrics(CollectorRegistry()), view=view)
        read = view.reader(store.get)
        keys = [(partition_for(u.encode(), 4), u.encode()) for u in users]
        for i, user in enumerate(users):
            event = txn(txn_id=f"T{i}", payer_vpa=user, amount_paise=5_000_00)
            routed = RoutedTransaction(txn=event, source=f"f:0:{i}", ingested_ns=0)
            batch.item(keys[i][0], routed)
        committing = asyncio.create_task(batch.commit())
        while_encoding: list[list[bool]] = []
        while not sender.decided.is_set():
            while_encoding.append([read(p, k) is not None for p, k in keys])
            await asyncio.sleep(0)
        committing_reads = [read(p, k) is not None for p, k in keys]
        sender.release.set()
        await committing
        return while_encoding, committing_reads

    while_encoding, committing_reads = asyncio.run(scenario())
    assert len(while_encoding) >= 3  # the reader ran between the users' encodings
    assert all(seen == [False, False, False] for seen in while_encoding)
    assert committing_reads == [True, True, True]


def test_a_changed_tokens_file_is_read_again_and_an_unreadable_one_accepts_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from topologies.api import TokenFile

    path = tmp_path / "tokens"
    path.write_text("tok-old\n")
    clock = Clock()
    tokens = TokenFile(path, every=1.0, clock=clock)
    old, new = "Bearer tok-old", "Bearer tok-new-and-longer"
    assert (tokens.count, tokens.check(old) is not None, tokens.check(new)) == (1, True, None)
    path.write_text("# rotated\ntok-new-and-longer\n")
    assert tokens.check(old) is not None  # not looked at again before `every`
    clock.t = 1.0
    assert (tokens.check(old), tokens.check(new) is not None, tokens.count) == (None, True, 1)
    path.unlink()
    clock.t = 2.0
    assert (tokens.check(new), tokens.count) == (None, 0)  # fails closed
    clock.t = 3.0
    assert tokens.check(new) is None  # still gone: no second error line
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "tok-" not in errors[0].getMessage()
    path.write_text("tok-new-and-longer\ntok-3\n")
    clock.t = 4.0
    assert (tokens.check(new) is not None, tokens.count) == (True, 2)
    assert all("tok-" not in r.getMessage() for r in caplog.records)


def test_the_api_checks_tokens_against_the_file_as_it_is_now(tmp_path: Path) -> None:
    from topologies.api import TokenFile

    path = tmp_path / "tokens"
    path.write_text("tok-1\n")
    clock = Clock()
    api, _, _ = make(tokens=None)
    api.tokens = TokenFile(path, every=0.5, clock=clock)
    assert call(api).status == 200
    path.write_text("tok-2\n")
    clock.t = 1.0
    assert call(api).status == 401
    assert call(api, headers={"Authorization": "Bearer tok-2"}).status == 200
