"""``upi-rewards``: broker, worker, check-rules, rules, simulate, feed, wallet, user, demo."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rewards.errors import RulesError
from topologies.settings import DEFAULT_RULES, Settings


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Flags override ``REWARDS_*`` env vars, which override defaults."""
    flags = {
        "kafka_bootstrap_servers": getattr(args, "bootstrap", None),
        "rules_file": getattr(args, "rules", None),
        "web_port": getattr(args, "web_port", None),
        "data_dir": getattr(args, "data_dir", None),
        "partitions": getattr(args, "partitions", None),
        **extra,
    }
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def cmd_broker(args: argparse.Namespace) -> int:
    from brokers.launcher import ROOT, make_broker
    from tools.processes import shielded, stop_on_signals

    stop_on_signals()  # like Ctrl-C: the broker goes down with us
    log = args.log
    if log is None and args.engine == "kafka":
        log = ROOT / "var" / "kafka" / "logs" / f"broker-{args.port}.log"
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    broker = make_broker(args.engine, port=args.port, host=args.host, log=log)
    try:
        try:
            broker.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"upi-rewards broker: {exc}", file=sys.stderr, flush=True)
            return 1
        where = f"; log {log}" if log else ""
        print(
            f"broker ready on {broker.bootstrap}: {broker.description} (Ctrl-C stops it{where})",
            flush=True,
        )
        assert broker.proc is not None
        return broker.proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        with shielded():
            broker.stop()


def cmd_check_rules(args: argparse.Namespace) -> int:
    from rewards.rulebook import load_rules

    try:
        book = load_rules(args.file)
    except RulesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    spec = book.spec
    print(
        f"ok: {args.file}: version {spec.version!r}, timezone {spec.timezone}, "
        f"{len(spec.rules)} rules, daily cap {book.daily_cap}, monthly cap {book.monthly_cap}"
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from topologies.api import TokensFileError
    from topologies.worker import TransactionsUnavailable, run_worker

    try:
        return run_worker(_settings(args))
    except (RulesError, TokensFileError, TransactionsUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_feed(args: argparse.Namespace) -> int:
    from tools.feed import produce_feed

    settings = _settings(args)
    stats = produce_feed(
        settings.bootstrap_list(),
        count=args.count,
        seed=args.seed,
        rate=args.rate,
        bad_share=args.bad_share,
        fraud_share=args.fraud_share,
        truth_file=args.truth,
        key_by_payer=args.key_by_payer,
    )
    print(
        f"produced {stats.sent} messages ({stats.bad} bad) to upi.transactions "
        f"in {stats.seconds:.2f}s ({stats.rate:,.0f} msg/s)"
    )
    if args.truth:
        print(f"farming ground truth ({stats.farmers} users) written to {args.truth}")
    return 0


def cmd_wallet(args: argparse.Namespace) -> int:
    from tools.processes import stop_on_signals
    from tools.wallet import dump_balances, run_wallet, summary_lines
    from tools.wallet_ledger import WalletLedger

    stop_on_signals()  # an open SQLite transaction rolls back; rows+offsets stay paired
    settings = _settings(args)
    started = time.monotonic()
    with contextlib.suppress(KeyboardInterrupt):
        run_wallet(
            settings.bootstrap_list(),
            args.db,
            until_idle_s=args.until_idle,
            read_committed=args.read_committed,
        )
    if args.summary:
        ledger = WalletLedger(args.db)
        try:
            totals = ledger.totals()
        finally:
            ledger.close()
        print(f"wallet: stopped after {time.monotonic() - started:.1f}s")
        for line in summary_lines(totals):
            print(line)
    if args.balances:
        users = dump_balances(args.db, args.balances)
        print(f"balances of {users:,} users written to {args.balances}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """Ask any worker's /v1 API about one user (or one of the user's payments)."""
    import json
    import os
    import urllib.error
    import urllib.request
    from urllib.parse import quote

    from topologies.api import TokensFileError, load_tokens

    token = os.environ.get("REWARDS_API_TOKEN", "")
    tokens_file = args.token_file or os.environ.get("REWARDS_API_TOKENS_FILE")
    if not token and tokens_file:
        try:
            found = load_tokens(Path(tokens_file))
        except TokensFileError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        token = found[0].decode() if found else ""
    if not token:
        print(
            "error: no token: set REWARDS_API_TOKEN, or --token-file / REWARDS_API_TOKENS_FILE",
            file=sys.stderr,
        )
        return 2
    base = args.url.rstrip("/")
    if args.payment is not None:
        path = f"/v1/users/{quote(args.vpa, safe='')}/payments/{quote(args.payment, safe='')}"
    else:
        path = f"/v1/users/{quote(args.vpa, safe='')}/rewards"
        if args.at is not None:
            path += f"?at={quote(args.at, safe='')}"
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError as exc:
        print(f"error: {base} did not answer: {exc}", file=sys.stderr)
        return 2
    try:
        text = json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        text = body.decode(errors="replace")
    print(text, file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else (1 if status == 404 else 2)


def cmd_rules_publish(args: argparse.Namespace) -> int:
    from tools.campaigns import cmd_publish

    return cmd_publish(args.file, _settings(args).bootstrap_list(), args.backfill)


def cmd_rules_list(args: argparse.Namespace) -> int:
    from tools.campaigns import cmd_list

    return cmd_list(_settings(args).bootstrap_list())


def cmd_simulate(args: argparse.Namespace) -> int:
    from tools.backtest_cli import cmd_simulate as simulate

    args.bootstrap_list = _settings(args).bootstrap_list()
    return simulate(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from tools.demo import run_demo

    return run_demo(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="upi-rewards", description="UPI rewards pipeline: coins for payments, in a stream."
    )
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run a Kafka-protocol broker on loopback, in the foreground")
    p.add_argument(
        "--engine",
        choices=["tansu", "kafka"],
        default="tansu",
        help="tansu: embedded, in memory, starts at once (default); kafka: Apache Kafka, KRaft",
    )
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--log", type=Path, help="broker log file (kafka: var/kafka/logs/)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("worker", help="run a rewards worker (ingest + decide agents)")
    p.add_argument("--rules", type=Path, help=f"rules file (default {DEFAULT_RULES.name})")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, host:port[,host:port]")
    p.add_argument("--web-port", type=int, help="port of /metrics and /healthz (default 6066)")
    p.add_argument("--data-dir", type=Path, help="where rocksdict table state lives")
    p.add_argument("--partitions", type=int, help="partitions of the re-keyed stream and table")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("check-rules", help="validate a rules file and summarise it")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_check_rules)

    p = sub.add_parser("rules", help="versions of the rules on the topic rewards.rules")
    rules_sub = p.add_subparsers(dest="rules_command", required=True)
    q = rules_sub.add_parser(
        "publish", help="validate a rules file and publish it as a version (immutable)"
    )
    q.add_argument("file", type=Path)
    q.add_argument("--bootstrap", help="Kafka bootstrap servers, host:port[,host:port]")
    q.add_argument(
        "--backfill",
        action="store_true",
        help="allow an effective_from before now (replays, tests): past events may be decided",
    )
    q.set_defaults(func=cmd_rules_publish)
    q = rules_sub.add_parser("list", help="the versions, their effective_from, the one in force")
    q.add_argument("--bootstrap", help="Kafka bootstrap servers, host:port[,host:port]")
    q.set_defaults(func=cmd_rules_list)

    p = sub.add_parser(
        "simulate", help="backtest rules over history through the pure core, offline"
    )
    p.add_argument("--rules", type=Path, required=True, help="the rules to cost (NEW)")
    p.add_argument("--baseline", type=Path, help="the rules to compare with (OLD)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="raw feed messages, one per line")
    source.add_argument("--from-topic", metavar="TOPIC", help="read TOPIC to its end (no group)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, for --from-topic")
    p.add_argument("--report", type=Path, help="write a self-contained HTML report here")
    p.add_argument("--summary-json", type=Path, help="write the summary (JSON) here")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("feed", help="produce a synthetic UPI feed to upi.transactions")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = as fast as possible")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bad-share", type=float, default=0.01, help="share of malformed messages")
    p.add_argument(
        "--fraud-share",
        type=float,
        default=0.0,
        help="share of users that farm rewards (velocity, same_payee, circular in turn)",
    )
    p.add_argument(
        "--truth", type=Path, help="write the farming ground truth (JSON: user -> pattern) here"
    )
    p.add_argument(
        "--key-by-payer",
        action="store_true",
        help="key valid messages by payer_vpa (one user per feed partition, order kept)",
    )
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, host:port[,host:port]")
    p.set_defaults(func=cmd_feed)

    p = sub.add_parser(
        "wallet", help="reference wallet: apply rewards.coin-grants to a SQLite ledger, once per id"
    )
    p.add_argument("--db", type=Path, required=True, help="SQLite file (created if missing)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, host:port[,host:port]")
    p.add_argument(
        "--until-idle",
        type=float,
        metavar="SECONDS",
        help="exit once no record has arrived for this long (default: run until Ctrl-C)",
    )
    p.add_argument("--summary", action="store_true", help="print totals (counts only)")
    p.add_argument(
        "--read-committed",
        action="store_true",
        help="skip records of aborted transactions (workers running exactly_once)",
    )
    p.add_argument(
        "--balances", type=Path, metavar="FILE", help="write per-user balances (JSON; has VPAs)"
    )
    p.set_defaults(func=cmd_wallet)

    p = sub.add_parser(
        "user", help="ask a worker what one user can still earn, or about one payment"
    )
    p.add_argument("vpa", help="the user's VPA (any case)")
    p.add_argument("--at", help="RFC 3339 time with an offset (default: now)")
    p.add_argument("--payment", metavar="TXN", help="show this payment instead")
    p.add_argument(
        "--url",
        default=os.environ.get("REWARDS_API_URL", "http://127.0.0.1:6066"),
        help="any worker's web address (default $REWARDS_API_URL or http://127.0.0.1:6066)",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        help="tokens file whose first token is used (default $REWARDS_API_TOKENS_FILE; "
        "$REWARDS_API_TOKEN wins over both)",
    )
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("demo", help="embedded broker + worker + feed, with a live summary")
    p.add_argument("--count", type=int, default=50_000)
    p.add_argument("--fraud-share", type=float, default=0.01, help="share of users farming rewards")
    p.add_argument(
        "--rate", type=float, default=0.0, help="feed messages/s; 0 = as fast as possible"
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
    p.add_argument(
        "--engine", choices=["tansu", "kafka"], default="tansu", help="broker engine (tansu)"
    )
    p.add_argument("--web-port", type=int, default=6066)
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    p.add_argument(
        "--keep-running", action="store_true", help="stay up after the feed; Ctrl-C stops"
    )
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    p.set_defaults(func=cmd_demo)
    return top


def _explain(exc: ValidationError) -> str:
    """Each invalid setting by name, without its value (it may be a secret)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False, include_context=False)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ValidationError as exc:  # a setting (flag or REWARDS_* variable) is invalid
        print(f"error: {_explain(exc)}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
