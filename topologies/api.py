"""The per-user rewards API on the worker's web port: ``GET /v1/users/{vpa}/...``.

* **Auth**: ``Authorization: Bearer <token>``, the token one of the lines of
  ``REWARDS_API_TOKENS_FILE`` (read at start and again when it changes,
  ``TokenFile``; blank lines and ``#`` comments ignored), compared with
  ``hmac.compare_digest`` against every token. No file: ``/v1/*`` answers
  404 (the API is off). Missing/wrong token: 401 before anything else is
  looked at.
* **Rate limit**: a token bucket per token (``REWARDS_API_RATE_LIMIT``
  requests/s, burst of as many), per worker: 429 past it.
* **Routing**: the user's partition is the one the ingest edge sends the
  user's events to (``agents.partitioning.partition_for`` of the lowercase
  VPA over the ``txns-by-payer`` partitions), owned by the worker assigned
  that partition of the state table's changelog (co-partitioned with the
  decide agent's input). This worker answers when it owns it; otherwise it
  asks the owner (its web URL from Faust's partition assignor) and returns
  that answer. A forwarded request is never forwarded again (503 instead).
* **Freshness**: the request reads the user's record from the decide batch
  committing when it arrives, if that batch holds the user
  (``agents.decide.CommitView``), else from the local store (written after
  a batch's outputs were acknowledged; a batch still deciding has emitted
  nothing). No request waits: the answer covers every decision emitted
  before the request.
* **Logs**: no VPA, token or txn id; a request is named by a short hash.

The answers themselves are ``rewards.account`` (pure).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
from faust.types import TP
from faust.web import Request, Response, View
from pydantic import BaseModel, TypeAdapter, ValidationError

from agents.metrics import Metrics
from agents.partitioning import partition_for
from rewards.account import payment_answer, rewards_answer
from rewards.errors import RewardsError
from rewards.rulebook import RuleBook
from rewards.state import StateFormatError, decode_user, user_key
from schemas.api import ApiError, PaymentNotFound
from schemas.common import TxnId, Vpa, _parse_rfc3339

log = logging.getLogger(__name__)

REWARDS_PATH = "/v1/users/{vpa}/rewards"
PAYMENT_PATH = "/v1/users/{vpa}/payments/{txn_id}"
#: Set on a request one worker forwards to the owner; the owner never forwards it again.
FORWARDED = "X-Rewards-Forwarded"

_VPA: TypeAdapter[str] = TypeAdapter(Vpa)
_TXN_ID: TypeAdapter[str] = TypeAdapter(TxnId)
#: ``?at=...+05:30`` sent unencoded arrives as ``... 05:30`` ('+' is a space in a query).
_SPACE_OFFSET = re.compile(r" (\d{2}:\d{2})$")


def short_hash(value: str) -> str:
    """A short, stable name for a VPA or token in a log line (not reversible in practice)."""
    return hashlib.sha256(value.encode()).hexdigest()[:10]


class TokensFileError(RewardsError):
    """The configured tokens file cannot be read; the message names the file, not a token."""


def load_tokens(path: Path) -> list[bytes]:
    """The tokens of a tokens file: one a line, blank lines and ``#`` comments ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise TokensFileError(f"API tokens file {path}: cannot read it ({why})") from None
    tokens = []
    for line in text.splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            tokens.append(text.encode())
    return tokens


class Tokens:
    """The accepted tokens; ``check`` compares in constant time against every one."""

    def __init__(self, tokens: list[bytes]) -> None:
        # Compared as SHA-256 digests: equal lengths, so the time says nothing of a length.
        self._digests = [hashlib.sha256(t).digest() for t in tokens]

    def check(self, authorization: str | None) -> str | None:
        """The token's short hash when ``authorization`` carries an accepted token."""
        if authorization is None:
            return None
        scheme, _, given = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        candidate = given.strip().encode()
        digest = hashlib.sha256(candidate).digest()
        found = False
        for token in self._digests:  # every one, so the time says nothing about which
            found |= hmac.compare_digest(digest, token)
        return short_hash(candidate.decode(errors="replace")) if found and candidate else None


class TokenFile:
    """The tokens of a tokens file, read again when the file changes.

    ``check`` looks at the file (``os.stat``: inode, size, mtime) at most once
    every ``every`` seconds and reloads it when any of them changed, so a
    token is added or revoked by changing the file (a Kubernetes Secret mount
    swaps it in place) without a restart. A file that cannot be read fails
    closed: no token is accepted until it can be read again. The first read
    happens here and raises ``TokensFileError``.
    """

    def __init__(
        self, path: Path, every: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path, self._every, self._clock = path, every, clock
        self._stamp = self._stat()
        self.count = len(accepted := load_tokens(path))
        self._tokens = Tokens(accepted)
        self._next = clock() + every

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def current(self) -> Tokens:
        now = self._clock()
        if now < self._next:
            return self._tokens
        self._next = now + self._every
        stamp = self._stat()
        if stamp == self._stamp:
            return self._tokens
        try:
            accepted = load_tokens(self.path)
        except TokensFileError as exc:
            if self._stamp is not None or self.count:  # once per failure, not per request
                log.error("per-user API: %s; no token is accepted until it can be read", exc)
            self._tokens, self._stamp, self.count = Tokens([]), None, 0
            return self._tokens
        self._tokens, self._stamp, self.count = Tokens(accepted), stamp, len(accepted)
        log.info("per-user API: tokens file changed: %d tokens from %s", self.count, self.path)
        return self._tokens

    def check(self, authorization: str | None) -> str | None:
        return self.current().check(authorization)


class RateLimiter:
    """A token bucket per key: ``rate`` a second, bursts of up to ``rate``."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def allow(self, key: str) -> bool:
        now = self._clock()
        tokens, then = self._buckets.get(key, (self.rate, now))
        tokens = min(self.rate, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        return True


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Local:
    """The partition is this worker's: read it here."""

    partition: int


@dataclass(frozen=True, slots=True)
class Remote:
    """The partition is another worker's: ask it at ``url``."""

    url: str


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Nobody can answer for the partition now (rebalancing, recovering)."""

    why: str


Owner = Local | Remote | Unavailable


def _error(status: int, error: str, detail: str) -> Reply:
    return Reply(status, ApiError(error=error, detail=detail).model_dump_json().encode())


def _json(status: int, model: BaseModel) -> Reply:
    return Reply(status, model.model_dump_json().encode())


def parse_at(text: str | None, now: Callable[[], datetime]) -> datetime:
    """``at`` from the query (RFC 3339 with an offset), or now."""
    if text is None:
        return now()
    return _parse_rfc3339(_SPACE_OFFSET.sub(r"+\1", text))


class RewardsApi:
    """Everything between a parsed request and its reply; Faust-free for unit tests.

    ``owner(partition)`` says who answers for a partition, ``read(partition,
    key)`` reads a user's record (the committing batch's, else the store's),
    ``forward(url, path, authorization)`` asks another worker.
    """

    def __init__(
        self,
        book: RuleBook,
        tokens: Tokens | TokenFile | None,
        rate: float,
        partitions: int,
        owner: Callable[[int], Owner],
        read: Callable[[int, bytes], bytes | None],
        forward: Callable[[str, str, str], Awaitable[Reply]],
        metrics: Metrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.book, self.tokens, self.partitions = book, tokens, partitions
        self.limiter = RateLimiter(rate, clock)
        self._owner, self._read, self._forward = owner, read, forward
        self.metrics, self._now = metrics, now

    async def handle(
        self,
        endpoint: str,
        params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        path_qs: str,
    ) -> Reply:
        reply, route = await self._handle(endpoint, params, query, headers, path_qs)
        if self.metrics is not None:
            self.metrics.api_requests.labels(
                endpoint=endpoint, status=str(reply.status), route=route
            ).inc()
        return reply

    async def _handle(
        self,
        endpoint: str,
        params: Mapping[str, str],
        query: Mapping[str, str],
        headers: Mapping[str, str],
        path_qs: str,
    ) -> tuple[Reply, str]:
        if self.tokens is None:
            return _error(404, "api_off", "no API tokens file is configured"), "none"
        authorization = headers.get("Authorization")
        who = self.tokens.check(authorization)
        if who is None:
            return _error(401, "unauthorized", "a valid Bearer token is required"), "none"
        if not self.limiter.allow(who):
            return _error(429, "rate_limited", "too many requests for this token"), "none"
        try:
            vpa = _VPA.validate_python(params.get("vpa", ""))
        except ValidationError:
            return _error(400, "invalid_vpa", "not a VPA (name@handle)"), "none"
        at = None
        txn_id = ""
        if endpoint == "rewards":
            try:
                at = parse_at(query.get("at"), self._now)
                at.astimezone(self.book.tz).astimezone(UTC)  # in range in every zone involved
            except (ValueError, OverflowError):
                return _error(
                    400,
                    "invalid_at",
                    "at must be RFC 3339 with an offset, e.g. 2026-11-30T12:00:00+05:30",
                ), "none"
        else:
            try:
                txn_id = _TXN_ID.validate_python(params.get("txn_id", ""))
            except ValidationError:
                return _error(400, "invalid_txn_id", "not a txn id"), "none"
        key = user_key(vpa)
        partition = partition_for(key, self.partitions)
        owner = self._owner(partition)
        if isinstance(owner, Remote):
            if headers.get(FORWARDED):
                return _error(503, "not_owner", "partition moved; retry"), "forwarded"
            assert authorization is not None
            try:
                return await self._forward(owner.url, path_qs, authorization), "forwarded"
            except Exception as exc:  # the owner is down or slow: say so, no detail leaks
                log.warning(
                    "api: forwarding a request (user %s) for partition %d failed: %s",
                    short_hash(vpa),
                    partition,
                    type(exc).__name__,
                )
                return _error(503, "owner_unreachable", "the owning worker did not answer"), (
                    "forwarded"
                )
        if isinstance(owner, Unavailable):
            return _error(503, "not_ready", owner.why), "none"
        try:
            state = self._read(partition, key)
            user = None if state is None else decode_user(state)
        except Exception as exc:  # a bad record or a store error: never the worker's problem
            log.error(
                "api: the stored record of user %s is unreadable: %s",
                short_hash(vpa),
                "StateFormatError" if isinstance(exc, StateFormatError) else type(exc).__name__,
            )
            return _error(500, "state_unreadable", "the stored record cannot be read"), "local"
        if endpoint == "rewards":
            assert at is not None
            return _json(200, rewards_answer(vpa, user, self.book, at)), "local"
        answer = payment_answer(vpa, user, self.book, txn_id)
        return _json(404 if isinstance(answer, PaymentNotFound) else 200, answer), "local"


# --------------------------------------------------------------------------- Faust wiring


def faust_owner(
    app: faust.App, by_payer: str, table: str, ready: Callable[[], tuple[bool, str]]
) -> Callable[[int], Owner]:
    """Who answers for a partition, from the consumer's assignment and Faust's assignor."""

    def owner(partition: int) -> Owner:
        try:
            actives = app.assignor.assigned_actives()
        except AttributeError:  # before the first assignment
            return Unavailable("no assignment yet")
        if TP(by_payer, partition) in actives:
            ok, why = ready()  # only here: a tenth of a request's time (py-spy, bench.api)
            return Local(partition) if ok else Unavailable(why)
        changelog = app.tables[table].changelog_topic.get_topic_name()
        mine = str(app.conf.canonical_url)
        for url, topics in app.router.table_metadata(table).items():
            if partition in topics.get(changelog, ()) and url != mine:
                return Remote(url)
        return Unavailable("partition has no owner now (rebalancing)")

    return owner


def install(
    app: faust.App,
    *,
    book: RuleBook,
    tokens_file: Path | None,
    rate: float,
    partitions: int,
    by_payer: str,
    table: str,
    read: Callable[[int, bytes], bytes | None],
    metrics: Metrics,
    ready: Callable[[], tuple[bool, str]],
    forward_timeout_s: float = 5.0,
) -> RewardsApi:
    """Add the ``/v1`` views to the app's web server."""
    import aiohttp

    tokens: TokenFile | None = None
    if tokens_file is None:
        log.info("per-user API off (no REWARDS_API_TOKENS_FILE)")
    else:
        tokens = TokenFile(tokens_file)
        log.info("per-user API on: %d tokens from %s", tokens.count, tokens_file)
    timeout = aiohttp.ClientTimeout(total=forward_timeout_s)

    async def forward(url: str, path_qs: str, authorization: str) -> Reply:
        target = url.rstrip("/") + path_qs
        headers = {"Authorization": authorization, FORWARDED: "1"}
        async with app.http_client.get(target, headers=headers, timeout=timeout) as response:
            return Reply(response.status, await response.read())

    api = RewardsApi(
        book,
        tokens,
        rate,
        partitions,
        faust_owner(app, by_payer, table, ready),
        read,
        forward,
        metrics,
    )

    def respond(view: View, reply: Reply) -> Response:
        headers = {"Retry-After": "1"} if reply.status == 429 else None
        return view.bytes(
            reply.body, content_type="application/json", status=reply.status, headers=headers
        )

    def _request_parts(request: Request) -> tuple[Mapping[str, str], Mapping[str, str], str]:
        raw: Any = request
        return raw.query, raw.headers, str(raw.rel_url)

    @app.page(REWARDS_PATH, name="api-rewards")
    async def rewards(view: View, request: Request, vpa: str) -> Response:
        query, headers, path_qs = _request_parts(request)
        reply = await api.handle("rewards", {"vpa": vpa}, query, headers, path_qs)
        return respond(view, reply)

    @app.page(PAYMENT_PATH, name="api-payment")
    async def payment(view: View, request: Request, vpa: str, txn_id: str) -> Response:
        query, headers, path_qs = _request_parts(request)
        params = {"vpa": vpa, "txn_id": txn_id}
        reply = await api.handle("payment", params, query, headers, path_qs)
        return respond(view, reply)

    return api
