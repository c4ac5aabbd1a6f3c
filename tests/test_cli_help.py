"""`ailedger … --help` tells a newcomer what each option does and which variable sets it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from ailedger.cli.commands import app
from ailedger.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
ENV_HINT = re.compile(r"\[env: (AILEDGER_[A-Z_]+)")


def help_of(*command: str) -> str:
    """``ailedger COMMAND --help`` as a wide terminal without colour prints it."""
    result = subprocess.run(
        [sys.executable, "-m", "ailedger.cli", *command, "--help"],
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command below ``group``, by its full name (``dlq list``)."""
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a group (Typer bundles its own copy of Click)
            yield from commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def options(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option"]


ALL = dict(commands(typer.main.get_command(app)))


def test_worker_help_names_the_variable_of_each_option() -> None:
    text = help_of("worker")
    for variable in (
        "AILEDGER_BATCH_SIZE",
        "AILEDGER_METRICS_PORT",
        "AILEDGER_REDIS_URL",
        "AILEDGER_DATABASE_URL",
        "AILEDGER_STREAM",
        "AILEDGER_GROUP",
    ):
        assert f"[env: {variable}" in text, variable


def test_serve_help_shows_where_it_listens_by_default() -> None:
    text = help_of("serve")
    assert "[env: AILEDGER_API_HOST; default: 127.0.0.1]" in text
    assert "[env: AILEDGER_API_PORT; default: 8000]" in text


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_option_has_help(name: str) -> None:
    assert ALL[name].params, name
    for param in ALL[name].params:  # options and (Typer's) arguments alike
        assert (getattr(param, "help", "") or "").strip(), f"ailedger {name} {param.name}: no help"


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_variable_named_in_help_is_a_setting(name: str) -> None:
    """An option named after a setting says so, and no help names a variable nothing reads."""
    for param in options(ALL[name]):
        named = ENV_HINT.findall(param.help or "")
        for variable in named:
            assert variable.removeprefix("AILEDGER_").lower() in Settings.model_fields, variable
        if param.name in Settings.model_fields and name != "spool replay":
            assert named == [f"AILEDGER_{param.name.upper()}"], f"ailedger {name} {param.opts[0]}"


def test_readme_lists_every_variable_the_help_names_and_the_log_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    table = {m for m in re.findall(r"^\| `(AILEDGER_[A-Z_]+)`", readme, flags=re.MULTILINE)}
    in_help = {v for c in ALL.values() for p in options(c) for v in ENV_HINT.findall(p.help or "")}
    missing = (in_help | {"AILEDGER_LOG_JSON", "AILEDGER_LOG_LEVEL"}) - table
    assert not missing, f"README's configuration table lacks {sorted(missing)}"
