"""``llmship rollback`` and ``llmship status`` around a real SQLite registry (the served path runs end to end in
tests/e2e/test_deploy_llm.py, where the deploy built a real Bento)."""

from __future__ import annotations

import json
import socket

import pytest

from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.registry import ModelRegistry
from llmship.release_status import release_status
from llmship.serving.process import deploy_summary_path as summary_path
from llmship.serving.rollback import rollback
from tests.unit.registry.test_registry import FAIL, PASS, register_three
from tests.unit.test_cli import assert_one_error_line, run_cli


@pytest.fixture()
def released(registry_home, tmp_path, monkeypatch) -> ModelRegistry:
    monkeypatch.chdir(tmp_path)
    registry = ModelRegistry()
    register_three(registry, tmp_path)
    registry.promote("x", "1", PASS)
    registry.promote("x", "2", PASS)
    registry.promote("x", "3", FAIL)
    return registry


def _aliases(registry: ModelRegistry) -> tuple[str | None, ...]:
    return tuple(getattr(registry.by_alias("x", a), "version", None) for a in ("champion", "previous", "challenger"))


def _deployed(registry: ModelRegistry, port: int, **serve) -> None:
    config = ServeConfig(port=port, wait_s=20, rag=False, **serve)
    summary_path().write_text(json.dumps({
        "pid": 1, "host": "127.0.0.1", "port": port, "target": "llmship-chat:missing", "model_uri": "models:/x@champion",
        "log": "-", "started_at": 0, "url": config.url, "bento": "llmship-chat:does-not-exist", "model_name": "x",
        "model_version": "2", "alias": "champion", "previous": "1", "tracking_uri": registry.tracking_uri,
        "serve_config": config.model_dump(mode="json")}))


def test_rollback_without_restart_only_moves_the_aliases(released):
    _deployed(released, 3999)
    result = rollback(restart=False)
    assert (result.from_version, result.to_version, result.restarted) == ("2", "1", False)
    assert _aliases(released) == ("1", "2", "3")


def test_failed_restart_puts_the_release_back_as_it_was(released, tmp_path):
    """The Bento is gone and cannot be rebuilt, and the port is taken: the aliases return to where they were and
    the error says what happened, in one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _deployed(released, port, bentofile=str(tmp_path / "no-such-bentofile.yaml"))
        with pytest.raises(ServeError) as err:
            rollback()
    message = str(err.value)
    assert "rollback to version 1 failed" in message and "champion is version 2 again" in message
    assert "\n" not in message
    assert _aliases(released) == ("2", "1", "3")
    assert "rolled_back_at" not in released.get("x", "2").tags


def test_rollback_refusals_are_one_line_and_change_nothing(released, home):
    _deployed(released, 3999)
    assert_one_error_line(run_cli(home, "rollback", "--to", "3", "--no-restart"), "did not pass its gates")
    assert_one_error_line(run_cli(home, "rollback", "--to", "2", "--no-restart"), "already the champion")
    assert _aliases(released) == ("2", "1", "3")
    summary_path().unlink()
    assert_one_error_line(run_cli(home, "rollback"), "nothing deployed here to roll back")
    proc = run_cli(home, "rollback", "--name", "x")  # moves the aliases, then says there is nothing here to restart
    assert_one_error_line(proc, "champion of 'x' is now version 1, but no deploy of it here to restart")
    assert _aliases(released) == ("1", "2", "3")


def test_status_lists_aliases_with_their_gate_verdicts(released, home):
    status = release_status("x")
    assert [(v.version, v.aliases) for v in status.versions] == [("2", ["champion"]), ("1", ["previous"]),
                                                                  ("3", ["challenger"])]
    champion, _, challenger = status.versions
    assert champion.gates and all(g.passed for g in champion.gates)
    assert [g.name for g in challenger.gates if not g.passed] == ["smoke_pass_rate"]
    assert champion.metrics["perplexity"] == 22.0
    assert status.services == []  # nothing started here

    proc = run_cli(home, "status", "--name", "x")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[1].split()[:3] == ["v2", "champion", "passed"] and "gates 9/9 passed" in lines[1]
    assert "failed: smoke_pass_rate" in lines[3]
    assert "services: none running here" in proc.stdout
    assert json.loads(run_cli(home, "status", "--name", "x", "--json").stdout)["versions"][0]["version"] == "2"
