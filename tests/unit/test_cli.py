"""The ``llmship`` command: user errors are one stderr line and a non-zero exit."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from llmship.paths import REPO_ROOT


def run_cli(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMSHIP_HOME": str(home)}
    env.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # as scripts/env.sh sets it for every llmship command
    return subprocess.run([sys.executable, "-m", "llmship.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def assert_one_error_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("llmship: error: ")
    assert needle in lines[0]
    assert proc.stdout == ""


def test_status_of_unknown_model(home):
    proc = run_cli(home, "status", "--name", "nope")
    assert_one_error_line(proc, "no registered versions of 'nope'")
    assert (home / "mlflow" / "mlflow.db").is_file()  # the registry it looked in is the one under the home


def test_serve_info_with_nothing_deployed(home):
    proc = run_cli(home, "serve", "info")
    assert_one_error_line(proc, "nothing deployed yet")


def test_serve_info_with_a_dead_server(home):
    home.mkdir(parents=True, exist_ok=True)
    (home / "last-deploy.json").write_text(
        '{"port": 1, "pid": 999999999, "url": "http://127.0.0.1:1", "model_name": "m", "alias": "champion"}')
    proc = run_cli(home, "serve", "info")
    assert_one_error_line(proc, "is not running")


def test_serve_status_with_nothing_running(home, capsys):
    from llmship.cli import main

    assert main(["serve", "status"]) == 0
    assert capsys.readouterr().out.strip() == "no llmship server is running"
    assert main(["serve", "status", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_usage_error_exits_2(capsys):
    from llmship.cli import main

    with pytest.raises(SystemExit) as err:
        main(["frobnicate"])
    assert err.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_eval_rag_without_a_rag_service(home):
    from tests.conftest import free_port

    proc = run_cli(home, "eval", "rag", "--url", f"http://127.0.0.1:{free_port()}")
    assert_one_error_line(proc, "cannot reach the RAG service")


def test_serve_rag_without_a_chat_server(home):
    proc = run_cli(home, "serve", "rag")
    assert_one_error_line(proc, "no chat server is running")
