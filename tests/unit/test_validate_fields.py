"""Every field rule of the feed contract, good and bad, and hostile bytes."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rewards.validate import MAX_MESSAGE_BYTES, TRUNCATE_RAW_BYTES, Source, decode
from schemas.dead_letter import DeadLetter
from schemas.transaction import Transaction
from tests.unit.helpers import doc, raw

SRC = Source("upi.transactions", 2, 99)


def letter(value: bytes | None) -> DeadLetter:
    out = decode(value, SRC)
    assert isinstance(out, DeadLetter), out
    assert (out.topic, out.partition, out.offset) == ("upi.transactions", 2, 99)
    return out


GOOD = [
    {},
    {"txn_id": "A"},
    {"txn_id": "x" * 64},
    {"txn_id": "AXI:2026.11_25-01"},
    {"payer_vpa": "ab@okaxis"},
    {"payer_vpa": "a" * 256 + "@okaxis"},
    {"payee_vpa": "shop-1_x.y@h" + "a" * 62},
    {"payee_kind": "PERSON", "mcc": ...},
    {"payee_kind": "PERSON", "mcc": "5411"},
    {"amount_paise": 1},
    {"amount_paise": 50_000_000},
    {"status": "PENDING"},
    {"status": "FAILED"},
    {"kind": "REFUND", "original_txn_id": "T0"},
    {"event_time": "2026-11-25T04:30:00Z"},
    {"event_time": "2026-11-25t04:30:00z"},
    {"event_time": "2026-11-25T10:00:00.123456789+05:30"},
    {"event_time": "2026-11-25 10:00:00+05:30"},
    {"unknown_field": {"nested": [1, 2]}},
]

BAD = [
    ({"txn_id": ...}, "MISSING_FIELD", "txn_id"),
    ({"txn_id": ""}, "INVALID_FIELD", "txn_id"),
    ({"txn_id": "x" * 65}, "INVALID_FIELD", "txn_id"),
    ({"txn_id": "a/b"}, "INVALID_FIELD", "txn_id"),
    ({"txn_id": 12}, "INVALID_FIELD", "txn_id"),
    ({"kind": "payment"}, "INVALID_FIELD", "kind"),
    ({"kind": ...}, "MISSING_FIELD", "kind"),
    ({"status": "OK"}, "INVALID_FIELD", "status"),
    ({"status": ...}, "MISSING_FIELD", "status"),
    ({"payer_vpa": "a@okaxis"}, "INVALID_FIELD", "payer_vpa"),  # local part < 2
    ({"payer_vpa": "a" * 257 + "@okaxis"}, "INVALID_FIELD", "payer_vpa"),
    ({"payer_vpa": "ravi@1bank"}, "INVALID_FIELD", "payer_vpa"),  # handle starts with a digit
    ({"payer_vpa": "ravi@b"}, "INVALID_FIELD", "payer_vpa"),  # handle too short
    ({"payer_vpa": "ravi@b" + "a" * 64}, "INVALID_FIELD", "payer_vpa"),  # handle too long
    ({"payer_vpa": "ra vi@okaxis"}, "INVALID_FIELD", "payer_vpa"),
    ({"payer_vpa": "rävi@okaxis"}, "INVALID_FIELD", "payer_vpa"),
    ({"payer_vpa": ...}, "MISSING_FIELD", "payer_vpa"),
    ({"payee_vpa": "shop@ok.axis"}, "INVALID_FIELD", "payee_vpa"),
    ({"payee_vpa": ...}, "MISSING_FIELD", "payee_vpa"),
    ({"payee_kind": "SHOP"}, "INVALID_FIELD", "payee_kind"),
    ({"payee_kind": ...}, "MISSING_FIELD", "payee_kind"),
    ({"mcc": "541"}, "INVALID_FIELD", "mcc"),
    ({"mcc": 5411}, "INVALID_FIELD", "mcc"),
    ({"mcc": ...}, "MISSING_FIELD", "mcc"),
    ({"mcc": None}, "MISSING_FIELD", "mcc"),
    ({"amount_paise": 100.0}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": 1e3}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": "100"}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": True}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": 0}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": -5}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": 50_000_001}, "INVALID_FIELD", "amount_paise"),
    ({"amount_paise": ...}, "MISSING_FIELD", "amount_paise"),
    ({"currency": "USD"}, "INVALID_FIELD", "currency"),
    ({"currency": "inr"}, "INVALID_FIELD", "currency"),
    ({"currency": ...}, "MISSING_FIELD", "currency"),
    ({"event_time": "2026-11-25T10:00:00"}, "INVALID_FIELD", "event_time"),  # naive
    ({"event_time": "2026-11-25"}, "INVALID_FIELD", "event_time"),
    ({"event_time": "2026-02-30T10:00:00+05:30"}, "INVALID_FIELD", "event_time"),
    ({"event_time": 1764045000}, "INVALID_FIELD", "event_time"),
    ({"event_time": "25/11/2026 10:00"}, "INVALID_FIELD", "event_time"),
    ({"event_time": ...}, "MISSING_FIELD", "event_time"),
    ({"kind": "REFUND"}, "MISSING_FIELD", "original_txn_id"),
    ({"original_txn_id": "T0"}, "INVALID_FIELD", "original_txn_id"),
    ({"kind": "REFUND", "original_txn_id": "bad id"}, "INVALID_FIELD", "original_txn_id"),
]


@pytest.mark.parametrize("changes", GOOD, ids=[str(i) for i in range(len(GOOD))])
def test_valid_variants_are_accepted(changes):
    assert isinstance(decode(raw(**changes), SRC), Transaction)


@pytest.mark.parametrize(
    ("changes", "reason", "field"), BAD, ids=[f"{r}:{f}:{i}" for i, (_, r, f) in enumerate(BAD)]
)
def test_each_field_rule_has_its_dead_letter(changes, reason, field):
    out = letter(raw(**changes))
    assert (out.reason, out.field) == (reason, field)
    assert out.raw.encode() == raw(**changes)
    assert out.raw_encoding == "utf-8" and out.raw_size == len(raw(**changes))


def test_normalises_vpas_to_lowercase_and_ignores_extra_fields():
    t = decode(raw(payer_vpa="Ravi.Kumar@OKAXIS", payee_vpa="DMart@YBL", extra=1), SRC)
    assert isinstance(t, Transaction)
    assert (t.payer_vpa, t.payee_vpa) == ("ravi.kumar@okaxis", "dmart@ybl")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "EMPTY"),
        (b"", "EMPTY"),
        (b"not json", "NOT_JSON"),
        (b'{"txn_id": "A",', "NOT_JSON"),
        (b"[]", "NOT_OBJECT"),
        (b"null", "NOT_OBJECT"),
        (b"42", "NOT_OBJECT"),
        (b'"a string"', "NOT_OBJECT"),
        (b"\xff\xfe\xfd", "NOT_UTF8"),
    ],
)
def test_not_a_json_object(value, reason):
    out = letter(value)
    assert out.reason == reason and out.field is None


def test_non_utf8_raw_is_kept_as_base64():
    value = b"\x80\x81{bad}"
    out = letter(value)
    assert out.raw_encoding == "base64" and base64.b64decode(out.raw) == value


def test_huge_message_is_truncated_but_sized():
    value = orjson.dumps(doc(pad="x" * 1_000_000))
    out = letter(value)
    assert out.reason == "TOO_LARGE" and out.raw_truncated
    assert out.raw_size == len(value) > MAX_MESSAGE_BYTES
    assert out.raw.encode() == value[:TRUNCATE_RAW_BYTES]
    assert len(out.model_dump_json()) < 2 * TRUNCATE_RAW_BYTES


@settings(max_examples=400)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(value):
    out = decode(value, SRC)
    assert isinstance(out, Transaction | DeadLetter)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400)
@given(
    field=st.sampled_from([*doc().keys(), "original_txn_id", "mcc"]),
    value=JSON | st.just(...),
    kind=st.sampled_from(["PAYMENT", "REFUND"]),
)
def test_near_valid_json_is_valid_or_dead_lettered_never_both(field, value, kind):
    changes = {"kind": kind, field: value}
    if kind == "REFUND" and field != "original_txn_id":
        changes["original_txn_id"] = "T0"
    out = decode(raw(**changes), SRC)
    assert isinstance(out, Transaction | DeadLetter)
    if isinstance(out, DeadLetter):
        assert out.reason in {"MISSING_FIELD", "INVALID_FIELD"}
        assert out.field in {*doc().keys(), "original_txn_id", "mcc"}
