"""The exported JSON Schema files are current, well formed, and match real messages.

``jsonschema`` is not a dependency, so ``_errors`` below checks the subset of
JSON Schema the exporter emits; ``test_only_known_keywords`` fails if a new
pydantic or a new field type ever emits a keyword it does not understand, so
the checker can never pass a message by ignoring a rule.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents.dead_letters import encode as dead_letter_bytes
from rewards.ledger import replay
from rewards.rulebook import load_rules
from rewards.validate import Source, decode
from schemas import export
from schemas.dead_letter import DeadLetter, DeadLetterReason
from schemas.decision import Decision, Outcome, Reason
from schemas.grant import CoinGrant, GrantKind, GrantReason, RuleCoins
from schemas.transaction import Transaction
from tests.unit.helpers import decided

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_RULES = ROOT / "topologies" / "rules" / "launch.yaml"
IST = timezone(timedelta(hours=5, minutes=30))
FEED = Source("upi.transactions", 3, 1207)


# --- a small checker for the subset of JSON Schema 2020-12 the exporter emits ---

_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "format"}
_ASSERTIONS = {
    "$ref", "type", "const", "enum", "properties", "required", "additionalProperties",
    "items", "minItems", "pattern", "minLength", "maxLength", "minimum", "maximum",
    "exclusiveMinimum", "anyOf", "allOf", "if", "then", "else",
}  # fmt: skip


def _is_type(value: Any, kind: str) -> bool:
    # Stricter than JSON Schema on purpose: 1.0 is not an integer and True is not
    # a number here, as in the worker's own (strict) validation.
    return {
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "null": value is None,
    }[kind]


def _errors(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty: it validates)."""
    out: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        out += _errors(value, root["$defs"][ref.removeprefix("#/$defs/")], root, at)
    if "type" in schema and not _is_type(value, schema["type"]):
        return [*out, f"{at}: {value!r} is not of type {schema['type']}"]
    if "const" in schema and value != schema["const"]:
        out.append(f"{at}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(f"{at}: {value!r} does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            out.append(f"{at}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(f"{at}: longer than {schema['maxLength']}")
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(f"{at}: {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            out.append(f"{at}: {value} > {schema['maximum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            out.append(f"{at}: {value} <= {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            out.append(f"{at}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            out += _errors(item, schema.get("items", {}), root, f"{at}[{index}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        out += [f"{at}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in props:
                out += _errors(item, props[key], root, f"{at}.{key}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{at}: unexpected {key!r}")
    if "anyOf" in schema and all(_errors(value, s, root, at) for s in schema["anyOf"]):
        out.append(f"{at}: matches none of anyOf")
    for sub in schema.get("allOf", []):
        out += _errors(value, sub, root, at)
    if "if" in schema:
        branch = "then" if not _errors(value, schema["if"], root, at) else "else"
        out += _errors(value, schema.get(branch, {}), root, at)
    return out


def _keywords(node: Any, under_properties: bool = False) -> set[str]:
    """Every keyword used anywhere in a schema (property and $defs names excluded)."""
    if isinstance(node, list):
        return set().union(*(_keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if not under_properties:
            found.add(key)
            if key == "default":
                continue  # a default value is data, not schema
        found |= _keywords(value, under_properties=key in {"properties", "$defs"})
    return found


def _schema(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((export.DEFAULT_OUT / f"{name}.schema.json").read_text())
    return doc


def _validates(name: str, message: dict[str, Any]) -> list[str]:
    schema = _schema(name)
    return _errors(message, schema, schema)


# --- the files themselves ---


def test_committed_files_are_up_to_date():
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in export.DEFAULT_OUT.glob("*.json")}
    assert on_disk == export.render(), "stale: run `python -m schemas.export`"
    assert export.stale() == []


def test_check_flag_catches_missing_changed_and_leftover_files(tmp_path: Path):
    assert export.main(["--check", "--out", str(tmp_path)]) == 1  # nothing there yet
    assert export.main(["--out", str(tmp_path)]) == 0
    assert export.main(["--check", "--out", str(tmp_path)]) == 0
    grant = tmp_path / "coin-grant.schema.json"
    grant.write_text(grant.read_text().replace('"coins"', '"coin"'))
    assert export.main(["--check", "--out", str(tmp_path)]) == 1
    export.write(tmp_path)
    (tmp_path / "old-name.schema.json").write_text("{}")
    assert export.main(["--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("transaction", "upi.transactions"),
        ("coin-grant", "rewards.coin-grants"),
        ("decision", "rewards.decisions"),
        ("dead-letter", "rewards.dead-letters"),
        ("rules-file", "check-rules"),
    ],
)
def test_every_schema_is_a_described_json_schema(name: str, topic: str):
    schema = _schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:upi-rewards:schema:{name}"
    assert schema["title"]
    assert topic in schema["description"]
    assert schema["type"] == "object"


@pytest.mark.parametrize("name", [c.name for c in export.CONTRACTS])
def test_only_known_keywords(name: str):
    assert _keywords(_schema(name)) <= _ANNOTATIONS | _ASSERTIONS


@pytest.mark.parametrize(
    ("name", "required"),
    [
        (
            "transaction",
            {"txn_id", "kind", "status", "payer_vpa", "payee_vpa", "payee_kind",
             "amount_paise", "currency", "event_time"},
        ),
        (
            "coin-grant",
            {"schema_version", "grant_id", "kind", "user_vpa", "coins", "txn_id",
             "cause_txn_id", "reason", "rules_version", "rules", "event_time"},
        ),
        (
            "decision",
            {"txn_id", "user_vpa", "outcome", "coins", "reasons", "rules_version", "event_time"},
        ),
        (
            "dead-letter",
            {"reason", "detail", "raw", "raw_encoding", "raw_size", "raw_truncated", "topic",
             "partition", "offset"},
        ),
        ("rules-file", {"version", "timezone", "rules"}),
    ],
)  # fmt: skip
def test_required_fields(name: str, required: set[str]):
    assert set(_schema(name)["required"]) == required


def test_outputs_are_closed_and_enums_match_the_models():
    grant, decision, letter = _schema("coin-grant"), _schema("decision"), _schema("dead-letter")
    for schema in (grant, decision, letter):
        assert schema["additionalProperties"] is False
    defs = grant["$defs"]
    assert defs["GrantKind"]["enum"] == [k.value for k in GrantKind]
    assert defs["GrantReason"]["enum"] == [r.value for r in GrantReason]
    assert grant["properties"]["schema_version"]["const"] == 1
    assert grant["properties"]["coins"]["exclusiveMinimum"] == 0
    assert decision["$defs"]["Outcome"]["enum"] == [o.value for o in Outcome]
    assert letter["$defs"]["DeadLetterReason"]["enum"] == [r.value for r in DeadLetterReason]
    assert letter["properties"]["raw_encoding"]["enum"] == ["utf-8", "base64"]
    assert "field" not in letter["required"]  # omitted when there is none


def test_input_is_open_and_strict_about_amounts():
    schema = _schema("transaction")
    assert "additionalProperties" not in schema  # unknown fields are ignored
    amount = schema["properties"]["amount_paise"]
    assert (amount["type"], amount["minimum"], amount["maximum"]) == ("integer", 1, 50_000_000)
    assert schema["properties"]["currency"]["const"] == "INR"


# --- real messages validate against the exported schemas ---


def _event(**overrides: Any) -> dict[str, Any]:
    doc = {
        "txn_id": "AXI2611221200001",
        "kind": "PAYMENT",
        "status": "SUCCESS",
        "payer_vpa": "priya.sharma@okaxis",
        "payee_vpa": "freshmart.blr@ybl",
        "payee_kind": "MERCHANT",
        "mcc": "5411",
        "amount_paise": 84_500,
        "currency": "INR",
        "event_time": "2026-11-22T12:00:00+05:30",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not ...}  # ... removes a field


def _ledger_outputs() -> tuple[list[CoinGrant], list[Decision]]:
    """Grants and decisions as the pure core makes them, for a payment and its refund."""
    book = load_rules(LAUNCH_RULES)
    events = [
        _event(status="PENDING"),
        _event(),
        _event(),  # the bank resends it
        _event(txn_id="AXI2611231000002", kind="REFUND", amount_paise=30_000,
               original_txn_id="AXI2611221200001", event_time="2026-11-23T10:00:00Z"),
    ]  # fmt: skip
    effects, _ = replay([Transaction.model_validate_json(json.dumps(e)) for e in events], book)
    grants = [g for e in effects for g in e.grants]
    decisions = [decided(e) for e in effects]
    assert [g.kind for g in grants] == [GrantKind.GRANT, GrantKind.CLAWBACK]
    assert [d.outcome for d in decisions] == [
        Outcome.IGNORED,
        Outcome.GRANTED,
        Outcome.DUPLICATE,
        Outcome.CLAWED_BACK,
    ]
    return grants, decisions


def test_real_grants_and_decisions_validate():
    grants, decisions = _ledger_outputs()
    for grant in grants:
        assert _validates("coin-grant", grant.model_dump(mode="json")) == []
        assert _validates("coin-grant", json.loads(grant.model_dump_json())) == []  # the wire
    for decision in decisions:
        assert _validates("decision", decision.model_dump(mode="json")) == []
        assert _validates("decision", json.loads(decision.model_dump_json())) == []


def test_hand_built_grant_and_decision_validate():
    when = datetime(2026, 11, 30, 23, 59, 59, tzinfo=IST)
    grant = CoinGrant(
        grant_id="SBI2611302359001:grant",
        kind=GrantKind.GRANT,
        user_vpa="Rohan.K@okSBI",
        coins=50,
        txn_id="SBI2611302359001",
        cause_txn_id="SBI2611302359001",
        reason=GrantReason.PAYMENT,
        rules_version="2026-11-launch",
        rules=[RuleCoins(rule_id="merchant-base", coins=50)],
        event_time=when,
    )
    decision = Decision(
        txn_id="SBI2611302359001",
        user_vpa="rohan.k@oksbi",
        outcome=Outcome.GRANTED,
        coins=50,
        reasons=[Reason.RULE_MATCHED, Reason.DAILY_CAP],
        rules_version="2026-11-launch",
        event_time=when,
    )
    message = grant.model_dump(mode="json")
    assert message["user_vpa"] == "rohan.k@oksbi"
    assert message["event_time"] == "2026-11-30T23:59:59+05:30"
    assert _validates("coin-grant", message) == []
    assert _validates("decision", decision.model_dump(mode="json")) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{" + b" " * 20_000 + b"}",
        b"\xff\xfe\x00",
        b"not json",
        b"[1, 2]",
        json.dumps(_event(mcc=...)).encode(),
        json.dumps(_event(amount_paise="845.00")).encode(),
    ],
    ids=["empty", "too-large", "not-utf8", "not-json", "not-object", "missing", "invalid"],
)
def test_real_dead_letters_validate(raw: bytes):
    letter = decode(raw, FEED)
    assert isinstance(letter, DeadLetter)
    assert _validates("dead-letter", letter.model_dump(mode="json")) == []
    wire = json.loads(dead_letter_bytes(letter))  # exactly what the worker sends
    assert _validates("dead-letter", wire) == []
    assert ("field" in wire) == (letter.field is not None)


@pytest.mark.parametrize(
    ("name", "message", "why"),
    [
        ("coin-grant", {"coins": 0}, "coins must be > 0"),
        ("coin-grant", {"kind": "BONUS"}, "unknown kind"),
        ("coin-grant", {"grant_id": ...}, "grant_id is required"),
        ("coin-grant", {"extra": 1}, "outputs are closed"),
        ("coin-grant", {"rules": [{"rule_id": "x", "coins": 0}]}, "rule coins > 0"),
        ("decision", {"outcome": "MAYBE"}, "unknown outcome"),
        ("decision", {"coins": -1}, "coins >= 0"),
        ("decision", {"user_vpa": "no-handle"}, "a VPA has a handle"),
        ("dead-letter", {"reason": "BAD"}, "unknown reason"),
        ("dead-letter", {"raw_encoding": "latin-1"}, "utf-8 or base64"),
        ("dead-letter", {"raw_size": -1}, "raw_size >= 0"),
    ],
)
def test_checker_rejects_broken_messages(name: str, message: dict[str, Any], why: str):
    grants, decisions = _ledger_outputs()
    letter = decode(b"{}", FEED)
    assert isinstance(letter, DeadLetter)
    base = {
        "coin-grant": grants[0].model_dump(mode="json"),
        "decision": decisions[1].model_dump(mode="json"),
        "dead-letter": json.loads(dead_letter_bytes(letter)),
    }[name]
    assert _validates(name, base) == []
    broken = {k: v for k, v in {**base, **message}.items() if v is not ...}
    assert _validates(name, broken), why


# --- the input schema agrees with the worker's validation ---


@pytest.mark.parametrize(
    "event",
    [
        _event(),
        _event(payee_kind="PERSON", payee_vpa="rahul.verma@oksbi", mcc=...),
        _event(payee_kind="PERSON", mcc=None),
        _event(payee_kind="MERCHANT", mcc=...),
        _event(payee_kind="MERCHANT", mcc=None),
        _event(kind="REFUND", original_txn_id="AXI2611221200000"),
        _event(kind="REFUND"),
        _event(kind="REFUND", original_txn_id=None),
        _event(original_txn_id="AXI2611221200000"),
        _event(original_txn_id=None),
        _event(bank_ref="ignored"),
        _event(amount_paise=0),
        _event(amount_paise=50_000_001),
        _event(amount_paise="84500"),
        _event(amount_paise=True),
        _event(currency="USD"),
        _event(status="REVERSED"),
        _event(mcc="541"),
        _event(txn_id="has space"),
        _event(txn_id="x" * 65),
        _event(payer_vpa="p@1bank"),
        _event(payer_vpa="ab@b"),
        _event(payer_vpa="PRIYA@OKAXIS"),
        _event(txn_id=...),
    ],
)
def test_transaction_schema_agrees_with_the_model(event: dict[str, Any]):
    model_accepts = isinstance(decode(json.dumps(event).encode(), FEED), Transaction)
    schema_accepts = _validates("transaction", event) == []
    assert schema_accepts == model_accepts


def test_launch_rules_validate_against_the_rules_schema():
    rules = yaml.safe_load(LAUNCH_RULES.read_text(encoding="utf-8"))
    assert _validates("rules-file", rules) == []
    rules["rules"][0]["reward"]["max_coin"] = 50  # the typo the closed model must catch
    assert _validates("rules-file", rules)
