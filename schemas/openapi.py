"""The OpenAPI 3.1 document of the per-user API, generated from ``schemas.api``.

Written by ``python -m schemas.export`` to ``schemas/json/openapi.json`` and
checked there by ``--check`` like every JSON Schema file; the tests validate
real answers against it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from schemas.api import ApiError, PaymentAnswer, PaymentNotFound, RewardsAnswer
from schemas.common import TXN_ID_PATTERN, VPA_PATTERN

FILENAME = "openapi.json"
REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (RewardsAnswer, PaymentAnswer, PaymentNotFound, ApiError)


def _all_required(schema: dict[str, Any]) -> None:
    """Every output field is on the wire (nulls included): say so."""
    if "properties" in schema:
        schema["required"] = list(schema["properties"])


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": REF.format(model=name)}


def _reply(description: str, model: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _errors(*codes: str) -> dict[str, Any]:
    texts = {
        "400": "Malformed VPA, txn id or `at` (`error`: invalid_vpa, invalid_txn_id, invalid_at)",
        "401": "Missing or wrong bearer token (`error`: unauthorized)",
        "404": "The API is off: no tokens file (`error`: api_off)",
        "429": "Past the per-token rate limit (`error`: rate_limited; header Retry-After)",
        "500": "The user's stored record cannot be read (`error`: state_unreadable)",
        "503": "No worker can answer for the user's partition now; retry "
        "(`error`: not_ready, not_owner, owner_unreachable)",
    }
    return {code: _reply(texts[code], "ApiError") for code in codes}


def document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "serialization") for m in MODELS], ref_template=REF, title="upi-rewards API"
    )
    schemas: dict[str, Any] = defs["$defs"]
    for schema in schemas.values():
        _all_required(schema)
    vpa = {
        "name": "vpa",
        "in": "path",
        "required": True,
        "description": "The user's VPA, compared case-insensitively",
        "schema": {"type": "string", "pattern": VPA_PATTERN},
    }
    common = ("400", "401", "429", "500", "503")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "upi-rewards per-user rewards API",
            "version": "1",
            "description": "Served by every worker on its web port, from the pipeline's own "
            "state; a request for a user another worker owns is forwarded to it. See "
            "docs/contracts.md, section 5.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/users/{vpa}/rewards": {
                "get": {
                    "operationId": "userRewards",
                    "summary": "Coins granted and room left on the day and in the month of `at`",
                    "parameters": [
                        vpa,
                        {
                            "name": "at",
                            "in": "query",
                            "required": False,
                            "description": "RFC 3339 with an offset (default: now)",
                            "schema": {"type": "string", "format": "date-time"},
                        },
                    ],
                    "responses": {
                        "200": _reply("The user's rewards at `at`", "RewardsAnswer"),
                        **_errors(*common, "404"),
                    },
                }
            },
            "/v1/users/{vpa}/payments/{txn_id}": {
                "get": {
                    "operationId": "userPayment",
                    "summary": "What one payment earned, and what was refunded and clawed back",
                    "parameters": [
                        vpa,
                        {
                            "name": "txn_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "pattern": TXN_ID_PATTERN},
                        },
                    ],
                    "responses": {
                        "200": _reply("The payment", "PaymentAnswer"),
                        "404": {
                            "description": "No such payment in the state (body: "
                            "PaymentNotFound), or the API is off (body: ApiError)",
                            "content": {
                                "application/json": {
                                    "schema": {"anyOf": [_ref("PaymentNotFound"), _ref("ApiError")]}
                                }
                            },
                        },
                        **_errors(*common),
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A line of the file named by REWARDS_API_TOKENS_FILE",
                }
            },
        },
    }
