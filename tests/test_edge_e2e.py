"""The Supabase edge example and the TypeScript producer, end to end through real servers.

An edge function under Deno, `ailedger serve` as a subprocess, the machine's Redis and
Postgres, a burst worker: what the function logs lands in `ai_call_logs`, priced from the
providers' published prices, next to the Python-logged calls of the same job.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

import producer
from tests.edge_processes import (
    ADMIN_TOKEN,
    FUNCTIONS,
    PRODUCER_TS,
    RECORDINGS,
    TESTS,
    Toolchain,
    ailedger_serve,
    build_producer_ts,
    edge_function,
    tool_env,
)
from tests.faults import RedisServer, free_port, wait_for
from tests.ingest_helpers import FREE, TOKENS, contract_validator, rows_by_id

SCOUT = "meta-llama/Llama-4-Scout-17B-16E-Instruct"
HAIKU = "claude-3-5-haiku-20241022"
SAME_CALLS = RECORDINGS / "same-calls.json"
LOG_CALLS = TESTS / "edge" / "log_calls.mjs"
# The PDF pipeline's own calls, logged from Python around the edge function's.
EMBEDDING = {"task": "pdf_chunk_embedding", "model": "text-embedding-3-small", "input_tokens": 812}
ENRICHMENT = {
    "task": "product_enrichment_stage2",
    "model": "claude-3-5-sonnet-20241022",
    "provider": "anthropic",
    "input_tokens": 2_000,
    "output_tokens": 300,
}
PDF_TEXT = "Engineered oak plank, 14 mm: white oak veneer with matte lacquer on an HDF core."


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    return build_producer_ts()


@pytest.fixture
def serve(settings, tmp_path: Path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with ailedger_serve(settings, tmp_path / "serve.log", AILEDGER_INGEST_TOKENS=TOKENS) as base:
        yield base


def recording(host: str) -> dict[str, Any]:
    return orjson.loads((RECORDINGS / f"{host}.json").read_bytes())  # type: ignore[no-any-return]


def test_an_edge_functions_calls_join_the_python_calls_of_its_job(
    toolchain, serve, settings, db, run_burst, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # The platform's negotiated rate for Llama 4 Scout on Together wins over the catalog's.
    db.execute(
        "INSERT INTO price_overrides (provider, model, input_mtok, output_mtok, note)"
        " VALUES ('together', %s, 0.15, 0.50, 'negotiated')",
        (SCOUT,),
    )
    job = str(uuid.uuid4())
    python_logger = producer.AICallLogger(settings.redis_url, stream=settings.stream)
    try:
        with producer.job(job):  # the PDF pipeline's own calls, before and after the function
            embed_id = python_logger.log(**EMBEDDING)
            with edge_function(
                toolchain, tmp_path, AILEDGER_ENDPOINT=serve, AILEDGER_INGEST_TOKEN=FREE
            ) as function:
                answer = function.call({"job_id": job, "text": PDF_TEXT})
                assert answer.status_code == 200, answer.text
                body = answer.json()
                warnings = function.stderr()
            enrich_id = python_logger.log(**ENRICHMENT)
        assert python_logger.flush(10)
    finally:
        python_logger.close()
    assert "ailedger" not in warnings, warnings  # delivered without a complaint

    assert body["job_id"] == job and body["category"] == "flooring"
    assert [m["name"] for m in body["materials"]] == ["white oak veneer", "HDF core"]
    scout_id, haiku_id = body["calls"]

    run_burst()
    rows = rows_by_id(db)
    assert set(rows) == {embed_id, enrich_id, scout_id, haiku_id}
    assert {str(r["job_id"]) for r in rows.values()} == {job}
    scout, haiku = rows[scout_id], rows[haiku_id]
    assert (scout["task"], scout["model"], scout["provider"]) == (
        "material_analysis",
        SCOUT,
        "together",
    )
    assert (haiku["task"], haiku["model"], haiku["provider"]) == (
        "material_classification",
        HAIKU,
        "anthropic",
    )
    assert scout["service"] == haiku["service"] == "supabase-edge"
    # Together: 1187 prompt + 96 completion tokens at the negotiated $0.15 / $0.50 per MTok.
    assert (scout["input_tokens"], scout["output_tokens"]) == (1187, 96)
    assert (scout["cost"], scout["cost_source"]) == (Decimal("0.00022605"), "override")
    # Anthropic: 412 uncached input ($0.80/MTok) + 1536 cache reads ($0.08/MTok) + 18 output
    # ($4/MTok), Claude 3.5 Haiku's published prices.
    assert (haiku["input_tokens"], haiku["cache_read_tokens"], haiku["output_tokens"]) == (
        412 + 1536,
        1536,
        18,
    )
    assert haiku["cost"] == Decimal("0.00052448")
    # What the function sent the provider is kept; its API keys never were in it.
    assert haiku["request_data"]["model"] == HAIKU
    assert "sk-ant-api03" not in orjson.dumps(haiku["request_data"]).decode()
    assert scout["latency_ms"] is not None and haiku["latency_ms"] is not None
    assert scout["action"] == haiku["action"] == "use_ai_result"

    job_view = httpx.get(
        f"{serve}/api/admin/jobs/{job}/ai-costs",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert job_view.status_code == 200, job_view.text
    view = job_view.json()
    calls = view["calls"]
    assert {c["id"] for c in calls} == {embed_id, enrich_id, scout_id, haiku_id}
    assert [c["timestamp"] for c in calls] == sorted(c["timestamp"] for c in calls)
    assert [c["running_calls"] for c in calls] == [1, 2, 3, 4]
    # $0.02/MTok for 812 embedding tokens; Claude 3.5 Sonnet at $3 / $15 per MTok.
    expected_cost = (
        Decimal("0.00001624") + Decimal("0.00022605") + Decimal("0.00052448") + Decimal("0.0105")
    )
    totals = view["totals"]
    assert (totals["calls"], Decimal(totals["cost"])) == (4, expected_cost)
    # The tokens the providers reported: Together's total_tokens, Anthropic's three input
    # counts plus its output, and the two calls the pipeline logged itself.
    together_total = recording("api.together.xyz")["usage"]["total_tokens"]
    anthropic_usage = recording("api.anthropic.com")["usage"]
    anthropic_total = sum(anthropic_usage.values())
    assert totals["tokens"] == 812 + together_total + anthropic_total + 2_300


def node_log_calls(
    toolchain: Toolchain, transport: str, calls: Path, timeout: float = 30, **env: str
) -> subprocess.CompletedProcess[str]:
    """Log the calls in ``calls`` with the TypeScript producer under Node (log_calls.mjs)."""
    return subprocess.run(
        [toolchain.node, str(LOG_CALLS), transport, str(calls)],
        env=tool_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_same_call_from_python_typescript_http_and_typescript_redis_gives_the_same_row(
    toolchain, serve, settings, db, run_burst
) -> None:  # type: ignore[no-untyped-def]
    calls = orjson.loads(SAME_CALLS.read_bytes())
    python_logger = producer.AICallLogger(settings.redis_url, stream=settings.stream)
    try:
        from_python = [python_logger.log(**call) for call in calls]
        assert python_logger.flush(10)
    finally:
        python_logger.close()
    over_http = node_log_calls(
        toolchain, "http", SAME_CALLS, AILEDGER_ENDPOINT=serve, AILEDGER_INGEST_TOKEN=FREE
    )
    assert over_http.returncode == 0, over_http.stderr
    over_redis = node_log_calls(
        toolchain,
        "redis",
        SAME_CALLS,
        AILEDGER_REDIS_URL=settings.redis_url,
        AILEDGER_STREAM=settings.stream,
    )
    assert over_redis.returncode == 0, over_redis.stderr
    assert over_http.stderr == over_redis.stderr == ""  # nothing to complain about
    from_http = orjson.loads(over_http.stdout)["ids"]
    from_redis = orjson.loads(over_redis.stdout)["ids"]
    # Every entry, whichever producer wrote it, keeps the one contract: the event's schema.
    validator = contract_validator()
    entries = redis.Redis.from_url(settings.redis_url).xrange(settings.stream)
    assert len(entries) == 3 * len(calls)
    for _, fields in entries:
        validator.validate(orjson.loads(fields[b"e"]))

    run_burst()
    rows = rows_by_id(db)
    assert len(rows) == 3 * len(calls)
    for n, ids in enumerate(zip(from_python, from_http, from_redis, strict=True)):
        python_row, http_row, redis_row = (
            {k: v for k, v in rows[i].items() if k not in ("id", "timestamp", "created_at")}
            for i in ids
        )
        assert http_row == python_row, f"call {n}: TypeScript over HTTP differs from Python"
        assert redis_row == python_row, f"call {n}: TypeScript over Redis differs from Python"

    cached = rows[from_python[0]]
    # Anthropic's 220 uncached + 1024 written to the 5-minute cache + 3072 read from it.
    assert (cached["input_tokens"], cached["cache_read_tokens"], cached["cache_write_tokens"]) == (
        220 + 1024 + 3072,
        3072,
        1024,
    )
    # Claude 3.5 Haiku: $0.80 input, $0.08 cache read, $1 cache write, $4 output per MTok.
    assert cached["cost"] == (
        Decimal("0.000176") + Decimal("0.00024576") + Decimal("0.001024") + Decimal("0.000656")
    )
    assert cached["request_data"]["password"] == "[REDACTED]"
    assert "sk-ant-api03" not in orjson.dumps(cached["request_data"]).decode()
    assert "eyJhbGciOiJIUzI1NiJ9" not in cached["request_data"]["prompt"]
    assert rows[from_python[2]]["action"] == "fallback_to_rules"


def test_the_example_type_checks_against_the_producers_types(toolchain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # The published package brings its .d.ts through npm; here, the sources they come from.
    imports = tmp_path / "deno.json"
    source = PRODUCER_TS / "src" / "index.ts"
    imports.write_bytes(orjson.dumps({"imports": {"@ailedger/producer": str(source)}}))
    checked = subprocess.run(
        [str(toolchain.deno), "check", "--no-lock", "--config", str(imports),
         str(FUNCTIONS / "material-agent-orchestrator" / "index.ts")],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def ingest_answers(serve_log: Path, status: int) -> int:
    """How many ingest requests serve's access log shows answered with ``status``."""
    lines = serve_log.read_text(errors="replace").splitlines()
    events = [orjson.loads(line).get("event", "") for line in lines if line.startswith("{")]
    return sum('"POST /api/ingest HTTP/1.1" ' + str(status) in e for e in events)


def test_an_outage_of_the_ledger_delays_nothing_and_loses_nothing(
    toolchain, settings, db, run_burst, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Nothing listening, then serve answering 503 (its Redis down), then Redis back."""
    port = free_port()
    redis_server = RedisServer(tmp_path / "redis")  # not started yet: serve answers 503
    ledger = settings.model_copy(update={"redis_url": redis_server.url})
    serve_log = tmp_path / "serve.log"
    endpoint = f"http://127.0.0.1:{port}"
    jobs = [str(uuid.uuid4()), str(uuid.uuid4())]
    ids: list[str] = []
    try:
        with edge_function(
            toolchain,
            tmp_path,
            AILEDGER_ENDPOINT=endpoint,
            AILEDGER_INGEST_TOKEN=FREE,
            EDGE_RUNTIME="1",  # as on Supabase: the flush is handed to EdgeRuntime.waitUntil
        ) as function:
            for job in jobs:  # answered at once although the ledger is away
                answer = function.call({"job_id": job, "text": PDF_TEXT}, timeout=5)
                assert answer.status_code == 200, answer.text
                ids += answer.json()["calls"]
            wait_for(lambda: "cannot deliver" in function.stderr(), what="the outage reported")
            with ailedger_serve(ledger, serve_log, port=port, AILEDGER_INGEST_TOKENS=TOKENS):
                wait_for(
                    lambda: ingest_answers(serve_log, 503),
                    what="serve refusing the logger's batch with 503",
                )
                redis_server.start()
                stream = redis.Redis.from_url(redis_server.url)
                wait_for(
                    lambda: stream.xlen(settings.stream) >= len(ids),
                    timeout=40,
                    what="the buffered events reaching Redis",
                )
                assert stream.xlen(settings.stream) == len(ids)  # each sent once
                stream.close()
            warnings = function.stderr()
        run_burst(redis_url=redis_server.url)
    finally:
        redis_server.stop()
    rows = rows_by_id(db)
    assert set(rows) == set(ids) and len(ids) == 4
    assert sorted(str(r["job_id"]) for r in rows.values()) == sorted(jobs * 2)
    # One warning for the whole outage, refused connections and 503s alike.
    assert warnings.count("cannot deliver") == 1, warnings


def test_a_wrong_ingest_token_is_said_once_and_never_breaks_the_function(
    toolchain, serve, settings, db, run_burst, redis_client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    wrong = "not-an-ingest-token-4242424242"
    with edge_function(
        toolchain, tmp_path, AILEDGER_ENDPOINT=serve, AILEDGER_INGEST_TOKEN=wrong
    ) as function:
        for _ in range(3):
            answer = function.call({"job_id": str(uuid.uuid4()), "text": PDF_TEXT})
            assert answer.status_code == 200, answer.text
        warnings = function.stderr()
    refusals = [line for line in warnings.splitlines() if "refused the logger" in line]
    assert len(refusals) == 1, warnings
    assert "HTTP 401" in refusals[0] and "check the ingest token" in refusals[0]
    assert wrong not in warnings
    assert redis_client.xlen(settings.stream) == 0
    run_burst()
    assert rows_by_id(db) == {}


def test_a_failed_model_call_is_recorded_as_a_fallback_and_the_function_says_so(
    toolchain, serve, db, run_burst, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    job = str(uuid.uuid4())
    with edge_function(
        toolchain,
        tmp_path,
        AILEDGER_ENDPOINT=serve,
        AILEDGER_INGEST_TOKEN=FREE,
        EDGE_FAIL_HOSTS="api.anthropic.com",  # Anthropic answers 529, overloaded
    ) as function:
        answer = function.call({"job_id": job, "text": PDF_TEXT})
    assert answer.status_code == 502
    assert "Anthropic answered 529" in answer.json()["error"]
    run_burst()
    rows = {r["task"]: r for r in rows_by_id(db).values()}
    assert set(rows) == {"material_analysis", "material_classification"}
    failed = rows["material_classification"]
    assert str(failed["job_id"]) == job and failed["model"] == HAIKU
    assert failed["error_message"].startswith("ProviderError: Anthropic answered 529")
    assert failed["action"] == "fallback_to_rules"
    assert rows["material_analysis"]["action"] == "use_ai_result"
