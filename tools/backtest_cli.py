"""``upi-rewards simulate``: a backtest of rules over history, offline, before launch.

    upi-rewards simulate --rules NEW [--baseline OLD]
        (--input FILE | --from-topic upi.transactions --bootstrap HOST:PORT)
        [--report report.html] [--summary-json summary.json]

``--input``: one raw feed message per line (a line that fails validation is a
dead letter, as in the pipeline). ``--from-topic``: every partition of the
topic from its beginning to its end as of the start, read with no consumer
group. Each rules file decides the whole feed alone (its ``effective_from``,
if any, is not used). The run is the pure core (``rewards.backtest``), no
broker; a progress bar is drawn on stderr when it is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from rewards.backtest import SUMMARY_KEYS, run_decoded
from rewards.errors import RulesError
from rewards.rulebook import RuleBook, load_rules
from rewards.simulate import decode_feed

T = TypeVar("T")


class Progress:
    """``[#####.....]  45%  12,000/26,000  23,400 ev/s`` on one line, redrawn in place."""

    def __init__(self, total: int, label: str, stream: IO[str], every: int = 5000) -> None:
        self.total, self.label, self.stream, self.every = max(total, 1), label, stream, every
        self.started = time.monotonic()

    def wrap(self, items: Iterable[T]) -> Iterator[T]:
        n = 0
        for n, item in enumerate(items, 1):
            if n % self.every == 0:
                self.draw(n)
            yield item
        if n % self.every or n == 0:
            self.draw(n)
        self.stream.write("\n")
        self.stream.flush()

    def draw(self, n: int) -> None:
        share = min(n / self.total, 1.0)
        width = 30
        bar = "#" * int(share * width)
        rate = n / max(time.monotonic() - self.started, 1e-9)
        self.stream.write(
            f"\r{self.label:<9} [{bar:<{width}}] {share:4.0%}  "
            f"{n:,}/{self.total:,}  {rate:,.0f} ev/s"
        )
        self.stream.flush()


def read_lines(path: Path) -> list[bytes | None]:
    """One message per line; the line break is not part of it."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def read_topic(bootstrap: list[str], topic: str, timeout_s: float = 600.0) -> list[bytes | None]:
    """Every record value of ``topic`` up to its end as of now, partition after partition."""
    from tools.topic_io import TopicReader, read_to_end

    with TopicReader(bootstrap, [topic], max_partition_fetch_bytes=8 * 1024 * 1024) as reader:
        if not reader.consumer.assignment():
            raise RulesError(f"--from-topic: no topic {topic!r} on {','.join(bootstrap)}")
        out: list[tuple[int, int, bytes | None]] = []

        def poll() -> None:
            for tp, batch in reader.fetch(timeout_ms=500, max_records=50_000).items():
                out.extend((tp.partition, r.offset, r.value) for r in batch)

        read_to_end(reader, poll, timeout_s)
    return [value for _, _, value in sorted(out, key=lambda r: (r[0], r[1]))]


def _load(path: Path, what: str) -> RuleBook:
    try:
        return load_rules(path)
    except RulesError as exc:
        raise RulesError(f"{what}: {exc}") from None


def _table(new: dict[str, Any], base: dict[str, Any] | None) -> list[str]:
    head = f"{'':<22}{'new':>14}" + (f"{'baseline':>14}{'change':>14}" if base else "")
    lines = [head]
    for key in SUMMARY_KEYS:
        if key == "by_rule":
            continue
        row = f"{key:<22}{new[key]:>14,}"
        if base:
            row += f"{base[key]:>14,}{new[key] - base[key]:>+14,}"
        lines.append(row)
    rules = sorted(set(new["by_rule"]) | set((base or {}).get("by_rule", {})))
    for rule_id in rules:
        a = new["by_rule"].get(rule_id, 0)
        row = f"  coins {rule_id:<14}"[:22].ljust(22) + f"{a:>14,}"
        if base:
            b = base["by_rule"].get(rule_id, 0)
            row += f"{b:>14,}{a - b:>+14,}"
        lines.append(row)
    return lines


def cmd_simulate(args: Any) -> int:
    started = time.monotonic()
    try:
        new = _load(args.rules, "--rules")
        baseline = _load(args.baseline, "--baseline") if args.baseline else None
        if args.input is not None:
            messages = read_lines(args.input)
        else:
            messages = read_topic(args.bootstrap_list, args.from_topic)
    except (RulesError, OSError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the broker (kafka-python raises its own errors)
        print(f"error: reading {args.from_topic}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    tty = sys.stderr.isatty()

    def progress(label: str, items: Sequence[T]) -> Iterable[T]:
        return Progress(len(messages), label, sys.stderr).wrap(items) if tty else items

    t0 = time.process_time()
    decoded = list(decode_feed(progress("validate", messages)))
    new_run = run_decoded(progress("new", decoded), new)
    base_run = run_decoded(progress("baseline", decoded), baseline) if baseline else None
    runs = [r for r in (new_run, base_run) if r is not None]
    cpu = time.process_time() - t0
    base_summary = base_run.summary if base_run else None
    summary = {**new_run.summary, "baseline": base_summary}
    for line in _table(new_run.summary, base_summary):
        print(line)
    print(
        f"{len(messages):,} messages, {len(runs)} run(s) through the core in {cpu:.2f} s CPU "
        f"({cpu * 1e6 / max(len(messages) * len(runs), 1):.1f} µs/event)"
    )
    if args.summary_json:
        args.summary_json.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"summary written to {args.summary_json}")
    if args.report:
        from tools.report import render_report

        render_report(args.report, messages, new_run, base_run)
        print(f"report written to {args.report}")
    print(f"done in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0
