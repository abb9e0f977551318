"""Dead letters: how every stage builds and sends one, and the one error policy.

Bad input is dead-lettered by ``rewards.validate`` with its reason; what is
left for the stages is our own code failing on one item (``INTERNAL_ERROR``):
the item is parked with its position, the exception's type and text (the
text stays in the dead letter, never in a log line: pydantic's can quote the
payload), and the stage goes on with the next item.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from agents.metrics import Metrics
from rewards.validate import Source, dead_letter
from schemas.dead_letter import DeadLetter, DeadLetterReason

log = logging.getLogger(__name__)


def encode(letter: DeadLetter) -> bytes:
    return letter.model_dump_json(exclude_none=True).encode()


def internal_error(where: Source, exc: BaseException, raw: bytes) -> DeadLetter:
    """Park an item our own code could not handle; the log names position and type only."""
    log.error(
        "internal error on %s[%s]@%s: %s (parked in the dead-letter topic)",
        where.topic,
        where.partition,
        where.offset,
        type(exc).__name__,
        extra=asdict(where),  # topic, partition, offset: fields of a JSON log line
    )
    return dead_letter(DeadLetterReason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}", raw, where)


def counted(letter: DeadLetter, metrics: Metrics) -> bytes:
    """Count a dead letter by reason and return its bytes for the topic."""
    metrics.dead_letters.labels(reason=letter.reason.value).inc()
    return encode(letter)
