"""Write the JSON Schema of every external contract: ``python -m schemas.export``.

The wallet and bank teams code against these files rather than against our
Python, so they must never drift from the pydantic models: they are generated,
committed in ``schemas/json/`` and ``--check`` (run by ``make test``) fails
when the committed files differ from what the models produce now.

Usage::

    python -m schemas.export              # (re)write schemas/json/*.schema.json, openapi.json
    python -m schemas.export --out DIR    # write somewhere else
    python -m schemas.export --check      # exit 1 if the files on disk are stale

Pure stdlib + pydantic, so it runs in CI before anything else is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from schemas import openapi
from schemas.dead_letter import DeadLetter
from schemas.decision import Decision
from schemas.fraud_alert import FraudAlert
from schemas.grant import CoinGrant
from schemas.rules import RulesFile
from schemas.transaction import Transaction

#: Where the committed files live; package data, so it is next to this module.
DEFAULT_OUT = Path(__file__).resolve().parent / "json"
#: Pydantic 2 generates draft 2020-12; say so, so validators pick the right dialect.
DIALECT = "https://json-schema.org/draft/2020-12/schema"
SUFFIX = ".schema.json"

Mode = Literal["validation", "serialization"]


@dataclass(frozen=True, slots=True)
class Contract:
    """One exported schema: which model, which side of it, and what it is for."""

    name: str  # file stem and the last part of $id
    model: type[BaseModel]
    #: "validation" for what we read (what we accept), "serialization" for what
    #: we write (what consumers will actually see, e.g. event_time as a string).
    mode: Mode
    description: str
    #: Output fields that the producer leaves out when they are None; every
    #: other output field is always present on the wire, so it is required.
    omitted_when_none: frozenset[str] = field(default_factory=frozenset)

    @property
    def filename(self) -> str:
        return f"{self.name}{SUFFIX}"

    @property
    def schema_id(self) -> str:
        # A URN, not a URL: the files are shipped in the repo, not hosted anywhere.
        return f"urn:upi-rewards:schema:{self.name}"


CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "transaction",
        Transaction,
        "validation",
        "Input: one message on topic `upi.transactions` (the bank's UPI feed; key: anything, "
        "not relied on). UTF-8 JSON object, at most 16 KiB. Unknown fields are ignored. "
        "Anything this schema rejects goes to `rewards.dead-letters` with a reason code.",
    ),
    Contract(
        "coin-grant",
        CoinGrant,
        "serialization",
        "Output: one message on topic `rewards.coin-grants` (key: user_vpa), for the wallet. "
        "A GRANT adds coins, a CLAWBACK removes them; apply each grant_id at most once.",
    ),
    Contract(
        "decision",
        Decision,
        "serialization",
        "Output: one message on topic `rewards.decisions` (key: user_vpa): exactly one per "
        "valid input event. Messages in = decisions + dead letters.",
    ),
    Contract(
        "dead-letter",
        DeadLetter,
        "serialization",
        "Output: one message on topic `rewards.dead-letters` (no key): one per rejected input "
        "message, with a machine reason code and the original bytes.",
        # agents/dead_letters.py serializes dead letters with exclude_none=True.
        omitted_when_none=frozenset({"field"}),
    ),
    Contract(
        "fraud-alert",
        FraudAlert,
        "serialization",
        "Output: one message on topic `rewards.fraud-alerts` (key: user_vpa) per fraud flag "
        "raised on a user; at most one per rule while that rule's cooldown runs. "
        "alert_id is deterministic; drop repeats by alert_id.",
    ),
    Contract(
        "rules-file",
        RulesFile,
        "validation",
        "The reward rules file (YAML), validated at worker startup and by "
        "`upi-rewards check-rules FILE`. Closed: an unknown key is an error. "
        "`upi-rewards rules publish FILE` writes it, as JSON, to the compacted topic "
        "`rewards.rules` (key: version), where it is a later version of the rules.",
    ),
)

# Cross-field rules of Transaction (its model validator), which pydantic cannot
# express in JSON Schema by itself. Kept next to the generator, and the unit
# tests check that they agree with the model on every case.
_TRANSACTION_CONDITIONALS: list[dict[str, Any]] = [
    {
        "description": "mcc is required when payee_kind is MERCHANT",
        "if": {"properties": {"payee_kind": {"const": "MERCHANT"}}, "required": ["payee_kind"]},
        "then": {"properties": {"mcc": {"type": "string"}}, "required": ["mcc"]},
    },
    {
        "description": "original_txn_id is required if and only if kind is REFUND",
        "if": {"properties": {"kind": {"const": "REFUND"}}, "required": ["kind"]},
        "then": {
            "properties": {"original_txn_id": {"type": "string"}},
            "required": ["original_txn_id"],
        },
        "else": {"properties": {"original_txn_id": {"type": "null"}}},
    },
]


def schema_for(contract: Contract) -> dict[str, Any]:
    """The JSON Schema document of one contract, with $schema, $id, title, description."""
    body = contract.model.model_json_schema(mode=contract.mode)
    doc: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": contract.schema_id,
        "title": body.pop("title", contract.model.__name__),
        "description": _describe(contract, body.pop("description", None)),
    }
    doc.update(body)
    if contract.mode == "serialization":
        # Pydantic marks fields with defaults optional; on the wire the producer
        # always writes them, and consumers deserve to know they can rely on that.
        doc["required"] = [p for p in doc["properties"] if p not in contract.omitted_when_none]
    if contract.model is Transaction:
        doc["allOf"] = _TRANSACTION_CONDITIONALS
    return doc


def _describe(contract: Contract, docstring: str | None) -> str:
    return f"{contract.description}\n\n{docstring}" if docstring else contract.description


def render() -> dict[str, str]:
    """Every schema file's exact text, by file name (what ``--check`` compares)."""
    files = {
        c.filename: json.dumps(schema_for(c), indent=2, ensure_ascii=False) + "\n"
        for c in CONTRACTS
    }
    files[openapi.FILENAME] = json.dumps(openapi.document(), indent=2, ensure_ascii=False) + "\n"
    return files


def write(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Write every schema file into ``out_dir``; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8", newline="\n")
        written.append(path)
    return written


def stale(out_dir: Path = DEFAULT_OUT) -> list[str]:
    """Why the files in ``out_dir`` are not what the models generate; empty if current.

    A leftover ``*.schema.json`` with no contract counts too: a renamed contract
    must not leave its old file behind for someone to code against.
    """
    expected = render()
    problems = []
    for name, text in expected.items():
        path = out_dir / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the models")
    if out_dir.is_dir():
        for path in sorted(out_dir.glob(f"*{SUFFIX}")):
            if path.name not in expected:
                problems.append(f"{path}: no such contract any more")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m schemas.export",
        description="Write the JSON Schema of every external contract.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"directory (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files in --out differ from the models",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    if args.check:
        problems = stale(out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("JSON Schema is stale: run `python -m schemas.export`", file=sys.stderr)
            return 1
        print(f"{len(CONTRACTS)} schemas and {openapi.FILENAME} in {out_dir} are up to date")
        return 0
    for path in write(out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
