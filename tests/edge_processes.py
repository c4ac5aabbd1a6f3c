"""The processes the edge tests run: `ailedger serve`, an edge function under Deno, Node scripts.

Each starts on a free loopback port and is stopped by its context manager, whatever the
test did. The TypeScript producer is built once per session (`npm ci && npm run build` in
producer-ts) when its build is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.faults import cli_env, free_port, wait_for

REPO = Path(__file__).resolve().parent.parent
PRODUCER_TS = REPO / "producer-ts"
EXAMPLE = REPO / "examples" / "supabase-edge"
FUNCTIONS = EXAMPLE / "supabase" / "functions"
LOCAL_IMPORT_MAP = EXAMPLE / "supabase" / "deno.local.json"
TESTS = Path(__file__).resolve().parent
PLATFORM = TESTS / "edge" / "platform.ts"
RECORDINGS = TESTS / "data" / "edge"
ADMIN_TOKEN = "edge-admin-token-0123456789"


@dataclass(frozen=True)
class Toolchain:
    deno: Path
    node: str


def build_producer_ts() -> Toolchain:
    """Deno and Node, with producer-ts installed and built; skips only when npm is missing."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm is not installed: the TypeScript producer cannot be built")
    deno = PRODUCER_TS / "node_modules" / ".bin" / "deno"
    steps = []
    if not deno.exists() or not (PRODUCER_TS / "node_modules" / "ioredis").exists():
        steps.append([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"])
    if not (PRODUCER_TS / "dist" / "index.js").exists():
        steps.append([npm, "run", "build"])
    for step in steps:
        done = subprocess.run(
            step, cwd=PRODUCER_TS, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{' '.join(step)} failed in producer-ts:\n{done.stderr}"
    return Toolchain(deno=deno, node=node)


def tool_env(**extra: str) -> dict[str, str]:
    """A small environment for Deno and Node: no settings of the test run leak into them."""
    home = os.environ.get("HOME", "/tmp")
    return {"PATH": os.environ.get("PATH", ""), "HOME": home, "NO_COLOR": "1", **extra}


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def ailedger_serve(
    settings: Any, log: Path, *, port: int | None = None, **env: str
) -> Iterator[str]:
    """A live `ailedger serve` on the test's servers, its log lines in ``log``; yields its URL."""
    port = port or free_port()
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ailedger.cli", "serve", "--port", str(port)],
            env={**cli_env(settings), "AILEDGER_API_TOKEN": ADMIN_TOKEN, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text(errors="replace")
        return answers(f"{base}/healthz")

    try:
        wait_for(up, timeout=30, what="ailedger serve answering")
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


class EdgeFunction:
    """One edge function of the example, run by Deno with the test platform preloaded."""

    def __init__(self, toolchain: Toolchain, folder: Path, name: str, env: dict[str, str]):
        self.toolchain = toolchain
        self.folder = folder
        self.name = name
        self.env = env
        self.log = folder / f"{name}.stderr"
        self._port_file = folder / f"{name}.port"
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> EdgeFunction:
        self._port_file.unlink(missing_ok=True)
        with self.log.open("wb") as stderr:
            self._proc = subprocess.Popen(
                [str(self.toolchain.deno), "run", "--no-prompt", "--allow-net", "--allow-env",
                 "--allow-read", "--allow-write", "--config", str(LOCAL_IMPORT_MAP),
                 "--preload", str(PLATFORM), str(FUNCTIONS / self.name / "index.ts")],
                env=tool_env(
                    EDGE_PORT_FILE=str(self._port_file),
                    EDGE_RECORDINGS=str(RECORDINGS),
                    ANTHROPIC_API_KEY="sk-ant-api03-" + "k" * 40,
                    TOGETHER_API_KEY="together-" + "t" * 40,
                    **self.env,
                ),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )  # fmt: skip

        def listening() -> bool:
            assert self._proc is not None and self._proc.poll() is None, self.stderr()
            return self._port_file.exists() and self._port_file.read_text().strip() != ""

        wait_for(listening, timeout=30, what=f"edge function {self.name} listening")
        self.url = f"http://127.0.0.1:{self._port_file.read_text().strip()}"
        return self

    def call(self, body: Any, timeout: float = 20) -> httpx.Response:
        return httpx.post(self.url, json=body, timeout=timeout)

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._proc = None


@contextmanager
def edge_function(
    toolchain: Toolchain, folder: Path, name: str = "material-agent-orchestrator", **env: str
) -> Iterator[EdgeFunction]:
    function = EdgeFunction(toolchain, folder, name, env)
    try:
        yield function.start()
    finally:
        function.stop()
