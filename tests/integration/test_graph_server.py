"""``llmship graph start|status|stop`` as a user runs them: a detached ArcadeDB that outlives the command."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmship.errors import GraphError
from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore
from llmship.paths import REPO_ROOT
from tests.conftest import free_port


def run_cli(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LLMSHIP_HOME": str(home)}
    env.pop("LLMSHIP_GRAPH_PASSWORD", None)
    return subprocess.run([sys.executable, "-m", "llmship.cli", *args], env=env, cwd=REPO_ROOT, check=False,
                          capture_output=True, text=True, timeout=180)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmship: error: "), proc.stderr
    return lines[0]


@pytest.fixture()
def graph_home(home, monkeypatch):
    """A fresh LLMSHIP_HOME; whatever a test started there is stopped afterwards."""
    monkeypatch.delenv("LLMSHIP_GRAPH_PASSWORD", raising=False)
    for name in ("LLMSHIP_GRAPH_BACKEND", "NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    yield home
    run_cli(home, "graph", "stop")


def test_start_status_stop_restart_keeps_data(graph_home):
    bolt, http = free_port(), free_port()
    proc = run_cli(graph_home, "graph", "start", "--bolt-port", str(bolt), "--http-port", str(http))
    assert proc.returncode == 0, proc.stderr
    assert f"bolt://127.0.0.1:{bolt}" in proc.stdout and "started in" in proc.stdout
    assert proc.stderr == ""

    secret = graph_home / "graph" / "password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_text().strip()) >= 24

    # the server outlived the command; status says where it is
    status = run_cli(graph_home, "graph", "status", "--json")
    data = json.loads(status.stdout)
    assert data["running"] is True and data["uri"] == f"bolt://127.0.0.1:{bolt}"
    assert data["http_url"] == f"http://127.0.0.1:{http}"
    assert "graph running: bolt://" in run_cli(graph_home, "graph", "status").stdout
    again = run_cli(graph_home, "graph", "start", "--bolt-port", str(bolt), "--http-port", str(http))
    assert again.returncode == 0 and "already running" in again.stdout

    # from_env finds it through the state file and the password file
    settings = GraphSettings.from_env()
    assert (settings.backend, settings.uri) == ("arcadedb", f"bolt://127.0.0.1:{bolt}")
    with GraphStore.connect(settings) as store:
        store.ensure_schema()
        store.upsert_documents([{"id": "survivor", "hash": "h"}])
        store.upsert_chunks([{"id": "s-0", "doc_id": "survivor", "seq": 0, "text": "persistent zebra", "hash": "c",
                              "embedding": [0.1] * 384}])
        store.set_meta("schema_version", 7)

    stopped = run_cli(graph_home, "graph", "stop")
    assert stopped.returncode == 0 and "stopped the graph" in stopped.stdout
    assert "not running" in run_cli(graph_home, "graph", "status").stdout
    assert json.loads(run_cli(graph_home, "graph", "status", "--json").stdout) == {"running": False}
    assert "was not running" in run_cli(graph_home, "graph", "stop").stdout

    # server down: one clear line
    with pytest.raises(GraphError, match=rf"cannot reach the graph at bolt://127\.0\.0\.1:{bolt}"):
        GraphStore.connect(settings)

    # restart: same password file, same data, indexes still answer
    assert run_cli(graph_home, "graph", "start", "--bolt-port", str(bolt), "--http-port", str(http)).returncode == 0
    with GraphStore.connect(GraphSettings.from_env()) as store:
        assert store.document_hashes() == {"survivor": "h"}
        assert store.get_meta("schema_version") == 7
        assert store.keyword_search("zebra") and store.keyword_search("zebra")[0][0] == "s-0"
        assert store.vector_search([0.1] * 384, top_k=1)[0][0] == "s-0"


def test_sigterm_stops_the_server_while_a_client_stays_connected(graph_home):
    """A RAG service's driver pool keeps Bolt connections open. The JVM used to wait for their threads at exit, so a
    stop with a client connected never finished on SIGTERM: `graph stop` waited its whole timeout, then SIGKILLed."""
    bolt, http = free_port(), free_port()
    assert run_cli(graph_home, "graph", "start", "--bolt-port", str(bolt), "--http-port", str(http)).returncode == 0
    pid = json.loads(run_cli(graph_home, "graph", "status", "--json").stdout)["pid"]
    with GraphStore.connect(GraphSettings.from_env()) as store:
        store.ensure_schema()
        store.upsert_documents([{"id": "kept", "hash": "h"}])
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60  # a deadline for exiting at all: before the fix it waited for the client
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(pid), "the graph server ignored SIGTERM while a client was connected"
    log = (graph_home / "graph" / "server.log").read_text()
    assert "ArcadeDB Server is down" in log and "llmship graph: stopped" in log
    assert run_cli(graph_home, "graph", "start", "--bolt-port", str(bolt), "--http-port", str(http)).returncode == 0
    with GraphStore.connect(GraphSettings.from_env()) as store:
        assert store.document_hashes() == {"kept": "h"}


def _running(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except (OSError, IndexError):
        return False


def test_port_in_use_is_one_error_line(graph_home):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = run_cli(graph_home, "graph", "start", "--bolt-port", str(port), "--http-port", str(free_port()))
    line = one_error_line(proc)
    assert f"port {port} on 127.0.0.1 is in use" in line and "--bolt-port" in line
    assert proc.stdout == ""
    assert "not running" in run_cli(graph_home, "graph", "status").stdout


def test_server_down_is_one_error_line():
    port = free_port()
    settings = GraphSettings(uri=f"bolt://127.0.0.1:{port}", password="whatever-long", connect_timeout_s=2)
    with pytest.raises(GraphError) as err:
        GraphStore.connect(settings)
    message = str(err.value)
    assert message.startswith(f"cannot reach the graph at bolt://127.0.0.1:{port}") and "\n" not in message
    assert err.value.code == "graph_unavailable" and err.value.status == 503


def test_wrong_password_is_one_error_line(graph_server):
    settings = GraphSettings.for_server(graph_server, password="not-the-password")
    with pytest.raises(GraphError, match="refused user 'root'"):
        GraphStore.connect(settings)
