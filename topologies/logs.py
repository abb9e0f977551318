"""How a worker writes its log lines: text for a person, or one JSON object a line.

``REWARDS_LOG_FORMAT`` picks ``text`` or ``json``; unset, it is ``text`` when
standard output is a terminal and ``json`` otherwise (a container, a log file,
a supervisor). The configuration is handed to Faust's worker (mode's
``logging_config``), so Faust's own records and ours go through the same
handler. A JSON line holds ``time`` (RFC 3339, UTC), ``level``, ``logger``,
``message`` and, where the record is about one input record, its position:
``topic``, ``partition``, ``offset`` (the call site passes
``extra=dataclasses.asdict(source)``, a ``rewards.validate.Source``).

No log line carries a VPA, a token or a payload: the call sites log positions
and exception types only; the formatter adds nothing of its own.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]


def resolve(fmt: LogFormat | None, stream: IO[str] | None = None) -> LogFormat:
    """The format asked for, else ``text`` on a terminal and ``json`` elsewhere."""
    if fmt is not None:
        return fmt
    out = sys.stdout if stream is None else stream
    try:
        return "text" if out.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


class RewardsJsonFormatter(JsonFormatter):
    """python-json-logger's formatter with our field names and an RFC 3339 time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )


def logging_config(fmt: LogFormat, level: str) -> dict[str, Any] | None:
    """The ``logging.config.dictConfig`` for ``fmt``: ``None`` keeps Faust's text setup."""
    if fmt == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": RewardsJsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }
