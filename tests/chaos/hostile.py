"""Hostile feed messages for a live worker: every one must end up a dead letter.

Deterministic per seed. Shapes: random bytes, tombstones and empty values,
oversized blobs, deep nesting, absurd numbers, broken UTF-8 inside JSON, lone
surrogates, truncations, non-objects, and near-valid transactions with one to
three fields dropped or set to odd values. A candidate that the validation
core would accept is drawn again, so the stream is hostile by construction and
the live check can demand a dead letter for every one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

from rewards.validate import Source, decode
from schemas.dead_letter import DeadLetter

ODD_VALUES: tuple[Any, ...] = (
    None,
    "",
    " ",
    "\u0000",
    "\u202e",
    "💸",
    "x" * 300,
    0,
    -1,
    1.5,
    10**30,
    True,
    [],
    {},
    {"$ne": None},
    "2026-02-30T10:00:00+05:30",
    "2026-11-25T10:00:00",
    "inr",
    "payment",
    "MERCHANT ",
    "12345",
    "ab@",
    "@okaxis",
    "'; DROP TABLE ledger; --",
    "<script>alert(1)</script>",
)


def _near_valid(rng: random.Random, doc: dict[str, Any]) -> bytes:
    broken = dict(doc)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice([*doc, "original_txn_id"])
        if rng.random() < 0.3:
            broken.pop(name, None)
        else:
            broken[name] = rng.choice(ODD_VALUES)
    return json.dumps(broken, ensure_ascii=rng.random() < 0.5).encode()


def _candidate(rng: random.Random, doc: dict[str, Any]) -> bytes | None:
    good = json.dumps(doc).encode()
    shape = rng.randrange(12)
    if shape == 0:
        return rng.randbytes(rng.randint(1, 300))
    if shape == 1:
        return rng.choice([None, b""])
    if shape == 2:
        return b'{"blob": "' + b"A" * rng.randint(16_400, 40_000) + b'"}'
    if shape == 3:
        depth = rng.randint(300, 5000)
        return b"[" * depth + b"]" * depth
    if shape == 4:
        return good.replace(b'"amount_paise": ', b'"amount_paise": ' + b"9" * 400, 1)
    if shape == 5:
        cut = good.index(b'"payer_vpa": "') + 15
        return good[:cut] + b"\xc3\x28\xff" + good[cut:]
    if shape == 6:
        return good.replace(b'"currency": "INR"', b'"currency": "\\ud800"', 1)
    if shape == 7:
        return good[: rng.randint(1, len(good) - 1)]
    if shape == 8:
        return rng.choice([b"[]", b"null", b'"txn"', b"42", b"true", json.dumps([doc]).encode()])
    return _near_valid(rng, doc)


def hostile(rng: random.Random, doc: dict[str, Any]) -> Iterator[bytes | None]:
    """Endless hostile variants of a healthy transaction ``doc``."""
    source = Source("upi.transactions", 0, 0)
    while True:
        raw = _candidate(rng, doc)
        if isinstance(decode(raw, source), DeadLetter):
            yield raw
