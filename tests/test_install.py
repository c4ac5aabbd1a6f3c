"""What `pip install ailedger` gives a service: the producer and its two dependencies, no more."""

from __future__ import annotations

import email
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest

from tests.faults import build_wheel

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pydantic", "psycopg", "fastapi", "rq", "typer", "structlog", "genai_prices")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_base_install_requires_only_redis_and_orjson(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(name))
    required = metadata.get_all("Requires-Dist") or []
    base = sorted(
        r.split(";")[0].split(">")[0].split("<")[0].strip() for r in required if "extra ==" not in r
    )
    assert base == ["orjson", "redis[hiredis]"]
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"server", "demo", "all"} <= extras


def test_a_service_venv_logs_without_the_server_extra(wheel: Path, tmp_path: Path) -> None:
    """A fresh venv with `pip install ailedger`: the producer works, commands name the extra."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    probe = (
        "import sys, producer\n"
        "producer.log_call(task='t', model='m')\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    # Nothing listens there: the call is spooled under tmp_path, no shared stream is touched.
    isolated = {"AILEDGER_REDIS_URL": "redis://127.0.0.1:1/0", "AILEDGER_SPOOL_DIR": str(tmp_path)}
    imported = subprocess.run(
        [str(python), "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", **isolated},
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip() == "[]"
    # The import itself defers redis-py to the first send.
    lazy = subprocess.run(
        [str(python), "-c", "import sys, producer; print('redis' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert lazy.stdout.strip() == "False"
    command = subprocess.run(
        [str(env_dir / "bin" / "ailedger"), "worker", "--burst"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert command.returncode == 2
    lines = command.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ailedger[server]'" in lines[0]
    assert "Traceback" not in command.stderr
