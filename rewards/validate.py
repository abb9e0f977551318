"""Turn raw feed bytes into a Transaction or a DeadLetter; never raise.

This is the edge of the pipeline: whatever arrives on the feed, exactly one
of the two comes out, so messages in = decisions + dead letters holds.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import ValidationError

from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.transaction import Transaction

#: A UPI transaction is ~400 bytes; anything far larger is hostile or broken.
MAX_MESSAGE_BYTES = 16 * 1024
#: How much of an oversized message the dead letter keeps (the broker's
#: message limit must never be the reason a dead letter is lost).
TRUNCATE_RAW_BYTES = 4 * 1024
#: ``Transaction.model_validate_json`` without its Python wrapper (same defaults).
_validate_json = Transaction.__pydantic_validator__.validate_json


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from, carried into dead letters and state."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        """``topic:partition:offset``: how envelopes and state records carry it."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Source:
        """Inverse of ``str``; topic names may contain dots but never colons."""
        topic, partition, offset = text.rsplit(":", 2)
        return cls(topic, int(partition), int(offset))


def decode(raw: bytes | None, source: Source) -> Transaction | DeadLetter:
    """Validate one feed message."""
    if not raw:
        return dead_letter(DeadLetterReason.EMPTY, "message has no value", raw or b"", source)
    if len(raw) > MAX_MESSAGE_BYTES:
        return dead_letter(
            DeadLetterReason.TOO_LARGE,
            f"message is {len(raw)} bytes, the limit is {MAX_MESSAGE_BYTES}",
            raw,
            source,
        )
    try:
        return _validate_json(raw)  # type: ignore[no-any-return]
    except ValidationError as exc:
        return _classify(exc, raw, source)
    except Exception as exc:
        return dead_letter(
            DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", raw, source
        )


def _classify(exc: ValidationError, raw: bytes, source: Source) -> DeadLetter:
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind, loc = first["type"], first["loc"]
    if kind == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as err:
            return dead_letter(DeadLetterReason.NOT_UTF8, f"not UTF-8: {err.reason}", raw, source)
        return dead_letter(DeadLetterReason.NOT_JSON, f"not JSON: {first['msg']}", raw, source)
    if not loc and kind in {"model_type", "model_attributes_type", "dict_type"}:
        return dead_letter(DeadLetterReason.NOT_OBJECT, "JSON value is not an object", raw, source)
    # Missing fields first: they are the commonest bank-side bug and the clearest.
    for error in errors:
        if error["type"] == "missing" and error["loc"]:
            missing = str(error["loc"][0])
            return dead_letter(
                DeadLetterReason.MISSING_FIELD, f"{missing}: required", raw, source, missing
            )
    # The model checks the conditionally required fields only once every field is
    # valid, so a missing ``mcc``/``original_txn_id`` hides behind an invalid field:
    # look for it in the document (rejected messages only, never the valid path).
    conditional = _missing_conditional(raw)
    if conditional is not None:
        name, why = conditional
        return dead_letter(DeadLetterReason.MISSING_FIELD, f"{name}: {why}", raw, source, name)
    if kind == "cross_field":
        ctx = first.get("ctx") or {}
        named = str(ctx.get("field", ""))
        reason = (
            DeadLetterReason.MISSING_FIELD
            if ctx.get("problem") == "missing"
            else DeadLetterReason.INVALID_FIELD
        )
        return dead_letter(reason, first["msg"], raw, source, named or None)
    field = str(loc[0]) if loc else None
    detail = f"{field}: {first['msg']}" if field else first["msg"]
    return dead_letter(DeadLetterReason.INVALID_FIELD, detail, raw, source, field)


def _missing_conditional(raw: bytes) -> tuple[str, str] | None:
    """A conditionally required field (``Transaction._cross_field_rules``) that is missing."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("payee_kind") == "MERCHANT" and doc.get("mcc") is None:
        return "mcc", "required when payee_kind is MERCHANT"
    if doc.get("kind") == "REFUND" and doc.get("original_txn_id") is None:
        return "original_txn_id", "required when kind is REFUND"
    return None


def dead_letter(
    reason: DeadLetterReason,
    detail: str,
    raw: bytes,
    source: Source,
    field: str | None = None,
) -> DeadLetter:
    truncated = len(raw) > TRUNCATE_RAW_BYTES and reason is DeadLetterReason.TOO_LARGE
    kept = raw[:TRUNCATE_RAW_BYTES] if truncated else raw
    encoding: Literal["utf-8", "base64"] = "utf-8"
    try:
        text = kept.decode("utf-8")
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    return DeadLetter(
        reason=reason,
        detail=detail[:500],
        field=field,
        raw=text,
        raw_encoding=encoding,
        raw_size=len(raw),
        raw_truncated=truncated,
        topic=source.topic,
        partition=source.partition,
        offset=source.offset,
    )
