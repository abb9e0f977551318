"""Hostile input into the validation core: ``decode`` never raises, and every
message is exactly one of a valid Transaction or a dead letter, never both.

Raw bytes of any shape, and near-valid JSON (a good transaction with fields
removed, retyped, or replaced by odd values) are fed straight in. The live
counterpart (a worker fed thousands of these) is in tests/chaos.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards.validate import MAX_MESSAGE_BYTES, Source, decode
from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.transaction import Transaction
from tests.unit.helpers import BASE

SOURCE = Source("upi.transactions", 3, 1207)
FIELDS = [*sorted(BASE), "original_txn_id"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values close to the valid ones, where the edge cases live.
near_values: st.SearchStrategy[Any] = st.sampled_from(
    [
        "",
        " ",
        "INR ",
        "inr",
        "PAYMENT",
        "REFUND",
        "SUCCESS",
        "success",
        "MERCHANT",
        "5411",
        "541",
        "05411",
        "a@b",
        "ab@okaxis",
        "ab@1x",
        "x" * 65,
        "2026-02-30T10:00:00+05:30",
        "2026-11-25T10:00:00",
        "2026-11-25 10:00:00Z",
        "2026-11-25T10:00:00.1234567891+05:30",
        "2026-11-25T24:00:00+05:30",
        "9999-12-31T23:59:59-23:59",
        "\u0000",
        "\ud7ff",
        "T1 ",
        0,
        1,
        -1,
        50_000_000,
        50_000_001,
        2**63,
        1.0,
        1e308,
        True,
        False,
        None,
        [],
        {},
    ]
)


def check(raw: bytes | None) -> Transaction | DeadLetter:
    result = decode(raw, SOURCE)
    # Exactly one of the two kinds (a subclass of both, or of neither, fails).
    assert type(result) in (Transaction, DeadLetter), type(result)
    if type(result) is DeadLetter:
        assert result.reason in DeadLetterReason
        assert (result.topic, result.partition, result.offset) == ("upi.transactions", 3, 1207)
        assert result.raw_size == len(raw or b"")
        assert len(result.detail) <= 500
        # The dead letter itself must be serialisable (it is what gets sent).
        DeadLetter.model_validate_json(result.model_dump_json(exclude_none=True))
    else:
        assert type(result) is Transaction
        assert raw is not None and len(raw) <= MAX_MESSAGE_BYTES
        assert result.payer_vpa == result.payer_vpa.lower()
        # Valid means the contract holds: re-validating its own output is stable,
        # both as a model and through the decoder (what the next stage reads).
        again = Transaction.model_validate_json(result.model_dump_json())
        assert again == result
        assert decode(result.model_dump_json().encode(), SOURCE) == result
    return result


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512) | st.none())
def test_raw_bytes_never_raise(raw: bytes | None):
    check(raw)


def _sized(size: int, tail: bytes = b"") -> bytes:
    """A valid transaction padded (an ignored extra field) to exactly ``size`` bytes."""
    good = json.dumps({**BASE, "pad": ""}).encode()
    pad = size - len(good) - len(tail)
    raw = good[:-2] + b"x" * max(pad, 0) + b'"}' + tail
    return raw


@settings(max_examples=60, deadline=None)
@given(st.integers(-64, 64), st.binary(max_size=32))
def test_around_the_size_limit(delta: int, tail: bytes):
    raw = _sized(MAX_MESSAGE_BYTES + delta, tail)
    result = check(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        assert isinstance(result, DeadLetter) and result.reason is DeadLetterReason.TOO_LARGE
    elif not tail:
        assert isinstance(result, Transaction)  # a valid message up to the limit is accepted


def test_exactly_16_kib_is_accepted_one_byte_more_is_too_large():
    at_limit, over = _sized(16_384), _sized(16_385)
    assert (len(at_limit), len(over), MAX_MESSAGE_BYTES) == (16_384, 16_385, 16_384)
    assert type(check(at_limit)) is Transaction
    letter = check(over)
    assert isinstance(letter, DeadLetter) and letter.reason is DeadLetterReason.TOO_LARGE
    assert letter.raw_size == 16_385 and letter.raw_truncated


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_json_value_never_raises(value: Any):
    check(json.dumps(value).encode())


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(FIELDS), near_values | json_values, max_size=4),
    st.sets(st.sampled_from(FIELDS), max_size=3),
    st.dictionaries(st.text(max_size=12), json_values, max_size=3),
)
def test_near_valid_transactions_never_raise(
    changes: dict[str, Any], drop: set[str], extra: dict[str, Any]
):
    doc = {**extra, **BASE, **changes}
    for name in drop:
        doc.pop(name, None)
    result = check(json.dumps(doc).encode())
    if not changes and not drop:
        assert isinstance(result, Transaction)  # untouched (extra fields are ignored)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 400))
def test_corrupted_valid_bytes_never_raise(noise: bytes, at: int):
    good = json.dumps(BASE).encode()
    at = min(at, len(good))
    check(good[:at] + noise + good[at:])
    check(good[:at] + noise)
