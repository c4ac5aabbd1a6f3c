"""Cross-origin reads for the embedded elements: only configured origins, only the
element's reads, never with credentials; off by default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ailedger.api.app import create_app
from ailedger.settings import Settings
from worker.errors import ConfigurationError

TOKEN = "cors-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PLATFORM = "https://app.example.com"
IMAGE = "/api/admin/images/catalog%2F2025%2Fchair.png/ai-costs"
JOB = "/api/admin/jobs/upload-42/ai-costs"
LIVE = "/api/jobs/upload-42/calls"


def client(settings: Settings, origins: str) -> TestClient:
    update = {"api_token": SecretStr(TOKEN), "api_cors_origins": origins}
    return TestClient(create_app(settings.model_copy(update=update)))


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with client(settings, f"{PLATFORM}, http://localhost:5173") as c:
        yield c


def preflight(api: TestClient, path: str, origin: str) -> dict[str, str]:
    answer = api.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    return dict(answer.headers)


@pytest.mark.parametrize("path", [IMAGE, JOB, LIVE])
def test_a_configured_origin_reads_what_the_elements_show(api: TestClient, path: str) -> None:
    allowed = preflight(api, path, PLATFORM)
    assert allowed["access-control-allow-origin"] == PLATFORM
    assert "authorization" in allowed["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed
    answer = api.get(path, headers={**AUTH, "Origin": PLATFORM})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == PLATFORM
    # The token is still needed: CORS lets the page read, not skip the check.
    assert api.get(path, headers={"Origin": PLATFORM}).status_code == 401


def test_other_origins_and_other_endpoints_get_no_cors(api: TestClient) -> None:
    assert "access-control-allow-origin" not in preflight(api, IMAGE, "https://evil.example")
    elsewhere = api.get(IMAGE, headers={**AUTH, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in elsewhere.headers
    for path in ("/api/admin/ai-metrics", "/api/admin/budgets", "/api/admin/jobs"):
        answer = api.get(path, headers={**AUTH, "Origin": PLATFORM})
        assert answer.status_code == 200
        assert "access-control-allow-origin" not in answer.headers, path


def test_off_by_default(settings: Settings) -> None:
    with client(settings, "") as api:
        assert "access-control-allow-origin" not in preflight(api, IMAGE, PLATFORM)
        answer = api.get(IMAGE, headers={**AUTH, "Origin": PLATFORM})
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize("origins", ["*", "https://app.example.com/path", "app.example.com"])
def test_anything_but_exact_origins_is_refused_with_what_to_write(
    settings: Settings, origins: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"scheme://host\[:port\]"):
        client(settings, origins)
