"""What the ingest tests share: an app with ingest tokens, the contract, stored rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
from psycopg.rows import dict_row

CONTRACT = Path(__file__).resolve().parent.parent / "contract" / "event.schema.json"
BOUND = "pdf-extractor-token-0123456789"
FREE = "free-token-abcdefghijklmnop"
TOKENS = f"pdf-extractor:{BOUND},{FREE}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def contract_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(CONTRACT.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)  # type: ignore[no-any-return]


def rows_by_id(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    rows = db.cursor(row_factory=dict_row).execute("SELECT * FROM ai_call_logs").fetchall()
    return {str(row["id"]): row for row in rows}
