"""Field types shared by several contracts.

The patterns are the bank feed contract (docs/contracts.md); they live here once
so the input validator, the outputs and the rules file cannot drift apart.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints

TXN_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
VPA_PATTERN = r"^[A-Za-z0-9._\-]{2,256}@[A-Za-z][A-Za-z0-9]{1,63}$"
MCC_PATTERN = r"^[0-9]{4}$"
MAX_AMOUNT_PAISE = 50_000_000

# RFC 3339 date-time: full date, 'T' (or space, which RFC 3339 permits), time,
# optional fraction and a mandatory offset. Python's fromisoformat alone would
# also take naive times and week dates, which the contract forbids.
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


class TxnKind(StrEnum):
    PAYMENT = "PAYMENT"
    REFUND = "REFUND"


class TxnStatus(StrEnum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    PENDING = "PENDING"


class PayeeKind(StrEnum):
    PERSON = "PERSON"
    MERCHANT = "MERCHANT"


#: The form every well-behaved feed sends (``T``, a numeric offset, at most
#: microseconds): ``datetime.fromisoformat`` reads it exactly as written.
_CANONICAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2}")
_fromisoformat = datetime.fromisoformat


def _parse_rfc3339(value: Any) -> datetime:
    if type(value) is str and _CANONICAL.fullmatch(value) is not None:
        try:  # the per-event path; anything else takes the checks below
            return _fromisoformat(value)
        except ValueError:
            pass  # not a real date-time: said below
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry a UTC offset")
        return value
    if not isinstance(value, str):
        raise ValueError("timestamp must be an RFC 3339 string")
    matched = _RFC3339.match(value)
    if not matched:
        raise ValueError(
            "timestamp must be RFC 3339 with an offset, e.g. 2026-11-25T10:15:00+05:30"
        )
    text = value
    if "t" in text or "z" in text:
        text = text.replace("t", "T").replace("z", "Z")
    frac = matched.group(1)  # ".ddd", the only dot in a matching value
    if frac is not None and len(frac) > 7:  # Python keeps microseconds; drop the rest
        text = text.replace(frac, frac[:7])
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a real date-time: {exc}") from None


TxnId = Annotated[str, StringConstraints(pattern=TXN_ID_PATTERN)]
#: Lowercased by pydantic-core itself (``to_lower``): the pattern takes either case.
Vpa = Annotated[str, StringConstraints(pattern=VPA_PATTERN, to_lower=True)]
Mcc = Annotated[str, StringConstraints(pattern=MCC_PATTERN)]
Rfc3339 = Annotated[datetime, BeforeValidator(_parse_rfc3339)]
Paise = Annotated[int, Field(strict=True, ge=1, le=MAX_AMOUNT_PAISE)]
Coins = Annotated[int, Field(strict=True, ge=0)]
PositiveCoins = Annotated[int, Field(strict=True, gt=0)]


def to_rfc3339(value: datetime) -> str:
    """Render an aware datetime the way every output carries it (offset kept)."""
    return value.isoformat()
