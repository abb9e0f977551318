"""topologies.logs: the format chosen, and what one JSON line holds."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from dataclasses import asdict
from datetime import datetime

import pytest

from rewards.validate import Source
from topologies.logs import logging_config, resolve
from topologies.settings import Settings


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_unset_the_format_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert resolve(None, _Terminal()) == "text"
    assert resolve(None, io.StringIO()) == "json"
    assert resolve("json", _Terminal()) == "json"
    assert resolve("text", io.StringIO()) == "text"


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDS_LOG_FORMAT", "json")
    assert Settings().log_format == "json"
    monkeypatch.setenv("REWARDS_LOG_FORMAT", "yaml")
    with pytest.raises(ValueError, match="log_format"):
        Settings()


def test_text_keeps_fausts_own_setup() -> None:
    assert logging_config("text", "info") is None


def _json_lines(emit: object) -> list[dict[str, object]]:
    out = io.StringIO()
    config = logging_config("json", "info")
    assert config is not None
    config["handlers"]["default"]["stream"] = out
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        assert callable(emit)
        emit()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_message_and_the_position() -> None:
    where = Source("upi.transactions", 3, 41)

    def emit() -> None:
        logging.getLogger("agents.edge").warning(
            "offsets %s..%s never delivered", 41, 42, extra=asdict(where)
        )
        logging.getLogger("faust.transport").info("a framework record")

    first, second = _json_lines(emit)
    assert first["level"] == "WARNING"
    assert first["logger"] == "agents.edge"
    assert first["message"] == "offsets 41..42 never delivered"
    assert (first["topic"], first["partition"], first["offset"]) == ("upi.transactions", 3, 41)
    stamp = datetime.fromisoformat(str(first["time"]))
    assert stamp.utcoffset() is not None  # RFC 3339: with an offset
    assert second["logger"] == "faust.transport"
    assert "topic" not in second and "offset" not in second  # no position: no fields
