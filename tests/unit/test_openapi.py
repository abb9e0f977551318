"""The shipped OpenAPI document is current and every kind of answer validates against it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rewards.account import payment_answer, rewards_answer
from rewards.ledger import MemoryState, process
from schemas import openapi
from schemas.api import ApiError
from schemas.export import DEFAULT_OUT
from tests.unit.helpers import book, refund, txn
from tests.unit.test_schema_export import _ANNOTATIONS, _ASSERTIONS, _errors, _keywords

USER = "ravi.kumar@okaxis"


def shipped() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DEFAULT_OUT / openapi.FILENAME).read_text())
    return doc


def openapi_errors(body: Any, component: str) -> list[str]:
    """How ``body`` breaks the shipped document's schema ``component`` (empty: valid)."""
    text = json.dumps(shipped()["components"]["schemas"]).replace(
        "#/components/schemas/", "#/$defs/"
    )
    root = {"$defs": json.loads(text)}
    return _errors(body, root["$defs"][component], root)


def test_shipped_document_is_current() -> None:
    assert shipped() == openapi.document()


def test_only_keywords_the_checker_knows() -> None:
    schemas = shipped()["components"]["schemas"]
    unknown = _keywords({"$defs": schemas}) - _ANNOTATIONS - _ASSERTIONS
    assert not unknown, unknown


def test_every_answer_validates_and_a_wrong_one_does_not() -> None:
    rules = book(daily=120, fraud={"velocity": {"max_payments": 1, "window_seconds": 600}})
    state = MemoryState()
    for event in (
        txn(txn_id="A"),
        refund("R", "A", 50_000, event_time="2026-11-25T10:01:00+05:30"),
        txn(txn_id="B", event_time="2026-11-25T10:02:00+05:30"),
    ):
        process(event, rules, state.user(USER))
    at = datetime.fromisoformat("2026-11-25T10:03:00+05:30")
    answers = [
        ("RewardsAnswer", rewards_answer(USER, state[USER], rules, at)),
        ("RewardsAnswer", rewards_answer(USER, None, book(), at)),
        ("PaymentAnswer", payment_answer(USER, state[USER], rules, "A")),
        ("PaymentAnswer", payment_answer(USER, state[USER], rules, "B")),
        ("PaymentNotFound", payment_answer(USER, state[USER], rules, "R")),
        ("PaymentNotFound", payment_answer(USER, None, rules, "A")),
        ("ApiError", ApiError(error="unauthorized", detail="x")),
    ]
    held = json.loads(answers[0][1].model_dump_json())
    assert held["hold"]["active"] is True
    for component, answer in answers:
        body = json.loads(answer.model_dump_json())
        assert openapi_errors(body, component) == [], (component, body)
    broken = {**held, "day": {**held["day"], "room": "63"}}
    assert openapi_errors(broken, "RewardsAnswer")
    assert openapi_errors({k: v for k, v in held.items() if k != "hold"}, "RewardsAnswer")
