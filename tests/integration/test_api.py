"""The per-user API on two real workers: every answer from one of them equals the oracle.

Two workers in one group share the partitions; a generated feed (farmers
included) goes in; once every decision is out, every user (at several
times) and a sample of payments are asked of worker A alone, so about half
the answers are forwarded to worker B. Also: Faust's built-in views give
nothing away, 401 / 400 / 404 / 429, the OpenAPI document matches the
answers, and no VPA or txn id reaches either worker's log.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas.transaction import Transaction
from tests.integration.conftest import Worker, wait_for_outputs
from tests.oracle import Accounts
from tests.unit.test_openapi import openapi_errors
from tools.feedgen import generate
from tools.topic_io import TopicTail, producer
from topologies import topics
from topologies.settings import DEFAULT_RULES

pytestmark = pytest.mark.integration

COUNT = 4000
TOKEN = "it-token-0123456789"
#: Faust's own view paths (faust/web/apps): none may answer with data.
FAUST_VIEWS = [
    "/",
    "/router/",
    "/router/topics",
    "/router/user-state/",
    "/router/user-state/{vpa}/",
    "/table/",
    "/table/user-state/",
    "/table/user-state/{vpa}/",
    "/table/user-state/{vpa}%1FH/",
    "/graph/",
    "/stats/",
    "/assignment/",
    "/performance/",
    "/signal/",
]


def get(worker: Worker, path: str, token: str | None = TOKEN) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body, status, hdrs = r.read(), r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        body, status, hdrs = e.read(), e.code, dict(e.headers)
    try:
        return status, json.loads(body), hdrs
    except ValueError:
        return status, body.decode(errors="replace"), hdrs


def ask(worker: Worker, path: str) -> tuple[int, Any]:
    """GET with the token, waiting out 429s (the per-token limit applies to us too)."""
    deadline = time.monotonic() + 60
    while True:
        status, body, _ = get(worker, path)
        if status not in (429, 503) or time.monotonic() > deadline:
            return status, body
        time.sleep(0.2)


def test_every_answer_of_one_worker_equals_the_oracle(broker, workers, tmp_path: Path) -> None:
    rules = load_rules(DEFAULT_RULES)
    messages = list(generate(COUNT, seed=23, bad_share=0.005, fraud_share=0.04))
    decoded = [decode(m.value, Source("t", 0, 0)) for m in messages]
    valid = [t for t in decoded if isinstance(t, Transaction)]
    oracle = Accounts(valid, rules.spec)

    tokens = tmp_path / "tokens"
    tokens.write_text(f"# the integration test's token\n\n{TOKEN}\nsecond-token-abcdef\n")
    env = {"REWARDS_API_TOKENS_FILE": str(tokens), "REWARDS_API_RATE_LIMIT": "100"}
    a = workers.start(env=env)
    b = workers.start(env=env)
    by_payer = topics.Internal("upi-rewards").by_payer
    deadline = time.monotonic() + 120
    while not all(assigned(w, by_payer) > 0 for w in (a, b)):
        assert time.monotonic() < deadline, "the two workers did not share the partitions"
        time.sleep(0.5)

    prod = producer([broker.bootstrap])
    for m, t in zip(messages, decoded, strict=True):
        key = t.payer_vpa.encode() if isinstance(t, Transaction) else (m.key or b"bad")
        prod.send(topics.TRANSACTIONS, key=key, value=m.value)
    prod.flush()
    out = wait_for_outputs(broker.bootstrap, COUNT, timeout=240)
    grant_rules = {  # txn id -> the rules of its GRANT record, as the broker holds it
        g["txn_id"]: g["rules"]
        for g in (json.loads(v or b"{}") for _, v in out.records[topics.COIN_GRANTS])
        if g.get("kind") == "GRANT"
    }
    out.close()
    users = sorted(oracle.users)
    some_vpa = users[0]

    # Faust's built-in views: nothing but 404, no table, route or user data.
    for path in FAUST_VIEWS:
        status, body, _ = get(a, path.format(vpa=quote(some_vpa)), token=None)
        assert status == 404, (path, status, body)
        assert some_vpa not in str(body) and "user-state" not in str(body)
    for path in ("/metrics", "/healthz", "/readyz"):
        assert get(a, path, token=None)[0] == 200

    times = [datetime.fromisoformat("2026-11-20T23:59:59+05:30")]
    forwarded_before = api_count(a, "forwarded")
    mismatches: list[Any] = []
    deadline = time.monotonic() + 120
    pending = list(users)
    while pending:  # the circular stage's flags may still be landing: ask again until equal
        retry = []
        for vpa in pending:
            want_times = [*times, *newest(oracle, vpa)]
            for at in want_times:
                status, body = ask(
                    a, f"/v1/users/{quote(vpa.upper())}/rewards?at={quote(at.isoformat())}"
                )
                want: dict[str, object] | None = oracle.rewards(vpa, at)
                assert status != 200 or openapi_errors(body, "RewardsAnswer") == [], body
                if (status, body) != (200, want):
                    retry.append(vpa)
                    mismatches.append((vpa, at.isoformat(), status, body, want))
                    break
        pending = retry
        if pending:
            assert time.monotonic() < deadline, mismatches[-3:]
            mismatches.clear()
            time.sleep(1)
    # Half the users live on B: A forwarded their requests.
    assert api_count(a, "forwarded") > forwarded_before
    assert api_count(b, "local") > 0

    rng = random.Random(7)
    payments = [(v, x) for v in users for x in oracle.users[v].payments]
    sample = rng.sample(payments, min(150, len(payments)))
    assert any(oracle.payment(v, x)["coins_clawed_back"] for v, x in payments)  # type: ignore[index]
    for vpa, txn_id in sample:
        status, body = ask(a, f"/v1/users/{quote(vpa)}/payments/{quote(txn_id)}")
        assert (status, body) == (200, oracle.payment(vpa, txn_id)), (vpa, txn_id)
        assert openapi_errors(body, "PaymentAnswer") == []
        assert body["rules"] == grant_rules.get(txn_id, []), (vpa, txn_id)
    assert any(body["rules"] for body in (oracle.payment(v, x) for v, x in sample) if body)
    # Not a payment of this user (the state holds all its history: certainly never
    # seen), a refund, and a user the state has never seen.
    status, body = ask(a, f"/v1/users/{quote(some_vpa)}/payments/NOPE0001")
    assert (status, body["error"], body["reason"]) == (404, "payment_not_found", "never_seen")
    assert body["reason"] == oracle.not_found(some_vpa, "NOPE0001")
    assert openapi_errors(body, "PaymentNotFound") == []
    refunds = [(v, x) for v in users for x in oracle.users[v].records if not oracle.payment(v, x)]
    assert refunds
    status, body = ask(a, f"/v1/users/{quote(refunds[0][0])}/payments/{quote(refunds[0][1])}")
    assert (status, body["reason"]) == (404, "not_a_payment")
    status, body = ask(a, "/v1/users/never.seen@okaxis/rewards?at=2026-11-20T12:00:00%2B05:30")
    assert (status, body["known"], body["day"]["coins_granted"]) == (200, False, 0)
    status, body = ask(a, "/v1/users/never.seen@okaxis/payments/T1")
    assert (status, body["reason"]) == (404, "unknown_user")
    assert openapi_errors(body, "PaymentNotFound") == []

    # The support CLI asks worker A, with the first token of the file.
    vpa, txn_id = sample[0]
    at = newest(oracle, vpa)[-1]
    cli_env = {**os.environ, "REWARDS_API_TOKENS_FILE": str(tokens)}
    url = f"http://127.0.0.1:{a.web_port}"
    for extra, want in (
        (["--at", at.isoformat()], oracle.rewards(vpa, at)),
        (["--payment", txn_id], oracle.payment(vpa, txn_id)),
    ):
        cli = subprocess.run(
            [sys.executable, "-m", "tools.cli", "user", vpa.upper(), "--url", url, *extra],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env,
        )
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == want
    cli = subprocess.run(
        [sys.executable, "-m", "tools.cli", "user", vpa, "--url", url, "--payment", "NOPE1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env,
    )
    assert cli.returncode == 1 and json.loads(cli.stderr)["reason"] == "never_seen"

    # A user whose payment came beyond the horizon (decided, not kept): a missing
    # payment of theirs may be that one, or never seen; the body says it cannot tell.
    from tests.unit.helpers import raw

    gone = "horizon.user@okaxis"
    for txn_id, when in (("HZNEW001", "2026-11-25T10:00:00+05:30"), ("HZOLD001", "2026-09-01")):
        when = when if "T" in when else f"{when}T10:00:00+05:30"
        prod.send(
            topics.TRANSACTIONS,
            key=gone.encode(),
            value=raw(txn_id=txn_id, payer_vpa=gone, event_time=when),
        )
    prod.flush()
    deadline = time.monotonic() + 120
    while True:
        status, body = ask(a, f"/v1/users/{quote(gone)}/payments/HZOLD001")
        if body.get("reason") == "not_in_state":
            break
        assert time.monotonic() < deadline, (status, body)
        assert (status, body.get("reason")) in ((404, "unknown_user"), (404, "never_seen"))
        time.sleep(0.5)
    assert body == {
        "error": "payment_not_found",
        "reason": "not_in_state",
        "state_horizon_from": "2026-09-24",
    }
    assert ask(a, f"/v1/users/{quote(gone)}/payments/NOPE0001")[1]["reason"] == "not_in_state"
    assert ask(a, f"/v1/users/{quote(gone)}/payments/HZNEW001")[0] == 200

    # 401: no token, a wrong one, another scheme; nothing about the user in the body.
    path = f"/v1/users/{quote(some_vpa)}/rewards"
    for token in (None, "wrong-token", ""):
        status, body, _ = get(a, path, token=token)
        assert status == 401, (token, body)
        assert some_vpa not in json.dumps(body)
        assert openapi_errors(body, "ApiError") == []
    # 400 with a machine-readable reason.
    assert get(a, "/v1/users/not-a-vpa/rewards")[1]["error"] == "invalid_vpa"
    status, body, _ = get(a, f"{path}?at=2026-11-20T10:00:00")
    assert (status, body["error"]) == (400, "invalid_at")
    status, body, _ = get(a, f"/v1/users/{quote(some_vpa)}/payments/bad%20id")
    assert (status, body["error"]) == (400, "invalid_txn_id")
    # 429 past the per-token rate limit, with Retry-After; another token is unaffected.
    # Requests in parallel: one after another, a busy worker may answer slower than the
    # limit, and no request would ever be over it.
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: get(a, path), range(1200)))
    statuses = Counter(status for status, _, _ in results)
    limited = [(body, headers) for status, body, headers in results if status == 429]
    assert limited and statuses[200] > 0 and set(statuses) <= {200, 429}, statuses
    body, headers = limited[0]
    assert body["error"] == "rate_limited" and headers.get("Retry-After") == "1"
    assert openapi_errors(body, "ApiError") == []
    assert get(a, path, token="second-token-abcdef")[0] == 200

    # No VPA, token or txn id in either worker's log.
    for worker in (a, b):
        text = worker.log_text()
        assert TOKEN not in text
        leaked = [v for v in [*users, gone] if v in text.lower()]
        assert not leaked, leaked[:3]
        assert not [x for _, x in sample if x in text]


def test_no_tokens_file_means_no_api(broker, workers) -> None:
    worker = workers.start()
    status, body, _ = get(worker, "/v1/users/ravi.kumar@okaxis/rewards")
    assert (status, body["error"]) == (404, "api_off")
    assert get(worker, "/table/", token=None)[0] == 404


def newest(oracle: Accounts, vpa: str) -> list[datetime]:
    """The times of the user's last two payments: inside their day, and maybe a hold."""
    user = oracle.users[vpa]
    times = sorted(user.times[x][0] for x in user.payments)[-2:]
    return [datetime.fromisoformat(str(oracle._time(t))) for t in times]


def assigned(worker: Worker, topic: str) -> float:
    prefix = f'rewards_assigned_partitions{{topic="{topic}"}} '
    lines = [line for line in worker.metrics().splitlines() if line.startswith(prefix)]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


def api_count(worker: Worker, route: str) -> float:
    total = 0.0
    for line in worker.metrics().splitlines():
        if line.startswith("rewards_api_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _ready_api_worker(workers, tmp_path: Path) -> tuple[Path, Worker]:
    """One worker with the API on (its tokens file holds ``TOKEN``), once it is ready."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    worker = workers.start(env={"REWARDS_API_TOKENS_FILE": str(tokens)})
    deadline = time.monotonic() + 120
    while get(worker, "/readyz", token=None)[0] != 200:
        assert time.monotonic() < deadline, "worker not ready"
        time.sleep(0.3)
    return tokens, worker


def test_an_answer_reflects_every_decision_emitted_before_it(broker, workers, tmp_path):
    """Ask the moment a payment's decision is read off the topic: the answer holds it.

    End to end on a live worker. The window this guards (outputs acknowledged,
    store not yet written) is shorter than a consumer's fetch, so this run
    alone would rarely catch a read that skips the committing batch;
    tests/unit/test_api.py holds the changelog ack back to catch it every time.
    """
    from tests.unit.helpers import raw

    _, worker = _ready_api_worker(workers, tmp_path)
    vpa = "fresh.user@okaxis"
    tail = TopicTail([broker.bootstrap], [topics.DECISIONS])
    prod = producer([broker.bootstrap])
    try:
        for i in range(25):
            txn_id = f"FRESH{i:04d}"
            value = raw(
                txn_id=txn_id,
                payer_vpa=vpa,
                event_time=f"2026-11-25T10:{i:02d}:00+05:30",
                amount_paise=10_000 + i,
            )
            prod.send(topics.TRANSACTIONS, key=vpa.encode(), value=value)
            prod.flush()
            deadline = time.monotonic() + 60
            while not any(
                json.loads(v or b"{}")["txn_id"] == txn_id
                for _, v in tail.records[topics.DECISIONS]
            ):
                assert time.monotonic() < deadline, f"no decision for {txn_id}"
                tail.poll(timeout_ms=20)
            status, body, _ = get(worker, f"/v1/users/{vpa}/payments/{txn_id}")
            assert (status, body.get("txn_id")) == (200, txn_id), (i, status, body)
            assert body["amount_paise"] == 10_000 + i
    finally:
        tail.close()


def test_a_rotated_token_is_taken_without_a_restart(broker, workers, tmp_path):
    """Change the tokens file under a running worker: the new token works, the old one no
    longer does, within a few seconds, and the log names neither."""
    tokens, worker = _ready_api_worker(workers, tmp_path)
    path = "/v1/users/rotate.me@okaxis/rewards"
    assert get(worker, path)[0] == 200
    rotated = "rotated-" + "y" * 32
    tokens.write_text(f"# rotated\n{rotated}\n")
    deadline = time.monotonic() + 10
    while get(worker, path, token=rotated)[0] != 200:
        assert time.monotonic() < deadline, "the new token was not taken"
        time.sleep(0.2)
    assert get(worker, path)[0] == 401
    tokens.unlink()
    deadline = time.monotonic() + 10
    while get(worker, path, token=rotated)[0] != 401:
        assert time.monotonic() < deadline, "an unreadable file still accepts tokens"
        time.sleep(0.2)
    log = worker.log.read_text(errors="replace")
    assert "tokens file changed: 1 tokens" in log
    assert TOKEN not in log and rotated not in log
