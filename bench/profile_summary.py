"""Summarise a py-spy collapsed-stack profile (``py-spy record --format raw``).

    python -m bench.profile_summary PROFILE.txt [--top 40] [--match WORD ...]

Prints the inclusive share of samples per function (a function counted once
per sample however deep it recurses) and the self share of the leaf frames.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m.group("file")
    for marker in ("site-packages/", "wt-bench/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


def summarise(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    inclusive: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(f) for f in stack.split(";")]
        total += count
        for name in set(frames):
            inclusive[name] += count
        leaf[frames[-1]] += count
    return total, inclusive, leaf


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--match", nargs="*", default=[])
    args = p.parse_args()
    total, inclusive, leaf = summarise(args.profile)
    print(f"{total} samples")
    print("\ninclusive:")
    for name, n in inclusive.most_common(args.top):
        print(f"{100 * n / total:5.1f}%  {name}")
    print("\nself:")
    for name, n in leaf.most_common(args.top // 2):
        print(f"{100 * n / total:5.1f}%  {name}")
    for word in args.match:
        share = sum(n for name, n in inclusive.items() if word in name)
        print(f"match {word!r}: {100 * share / total:.1f}% (summed, may overlap)")


if __name__ == "__main__":
    main()
