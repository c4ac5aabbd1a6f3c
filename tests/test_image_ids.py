"""Per-image costs for any image id, through the one canonical route: S3 keys, file paths,
dot segments and an id that itself ends in ``/ai-costs``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.settings import Settings

TOKEN = "image-ids-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IDS = [
    "s3://bucket/catalog/2025/chair-0042.png",
    "catalog/2025/../2024/lamp.png",
    "uploads//double/slash.jpg",
    "scans/ai-costs",
    "plain-id",
]


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"api_token": SecretStr(TOKEN)}))
    with TestClient(app) as client:
        yield client


def store(db: psycopg.Connection[Any], image_id: str, task: str, cost: str) -> None:
    db.execute(
        "INSERT INTO ai_call_logs (id, timestamp, task, model, provider, input_tokens, cost,"
        " cost_source, image_id) VALUES (%s, %s, %s, 'clip', 'local', 10, %s, 'reported', %s)",
        (uuid.uuid4(), datetime.now(UTC), task, cost, image_id),
    )


@pytest.mark.parametrize("image_id", IDS)
def test_each_image_id_gets_its_own_steps_and_total(
    api: TestClient, db: psycopg.Connection[Any], image_id: str
) -> None:
    for other in IDS:  # every id has calls: a wrong match would show another's total
        store(db, other, "image_embedding", "0.001")
    store(db, image_id, "image_validation", "0.0025")
    # As the dashboard asks (one encoded segment) and as a person types it (slashes as is;
    # a client resolves "..", so ids with dot segments need the encoded form).
    paths = [quote(image_id, safe="")]
    if "/../" not in image_id:
        paths.append(image_id.replace("//", "/%2F"))
    for path in paths:
        answer = api.get(f"/api/admin/images/{path}/ai-costs", headers=AUTH)
        assert answer.status_code == 200, (path, answer.text)
        body = answer.json()
        assert body["image_id"] == image_id
        assert {s["task"]: Decimal(s["cost"]) for s in body["steps"]} == {
            "image_embedding": Decimal("0.001"),
            "image_validation": Decimal("0.0025"),
        }
        assert Decimal(body["total"]["cost"]) == Decimal("0.0035")


def test_one_endpoint_per_figure_the_query_form_is_gone(api: TestClient) -> None:
    assert api.get("/api/admin/image-costs", params={"id": "x"}, headers=AUTH).status_code == 404
