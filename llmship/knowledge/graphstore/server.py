"""The embedded graph server: ArcadeDB from the ``arcadedb-embedded`` wheel, spoken to over Bolt.

``start()`` runs ``python -m llmship.knowledge.graphstore.server run ...`` detached (its own
session, output to a log file, a JSON state file with pid and ports), the way
``llmship.serving.process`` runs ``bentoml serve``. That child starts the JVM
in-process through JPype (``arcadedb_embedded.create_server``, which wraps
``com.arcadedb.server.ArcadeDBServer``) with the Bolt plugin
(``server_plugins: "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"``, ``bolt_port``),
every listener on 127.0.0.1, creates the database if it is missing and then
blocks until SIGTERM, on which it stops the server cleanly. ``start`` returns
only once a real Bolt session answers ``RETURN 1`` in that database.

The JVM is started with ``-Xrs`` so that SIGTERM/SIGINT reach Python's handlers
(a clean ``server.stop()``) instead of the JVM's own; ArcadeDB writes a
``log/`` folder into the working directory, so the child runs inside the
graph folder.

State (all under ``LLMSHIP_HOME/graph`` unless a ``root`` is passed, as tests do):
``server.json`` (state), ``password`` (0600, generated on first start unless
``LLMSHIP_GRAPH_PASSWORD`` is set), ``server.log``, ``arcadedb/`` (databases,
users, ArcadeDB's own logs). ArcadeDB's user is ``root``; the password is
applied when the root user is first created, so changing it later means
deleting ``arcadedb/config`` (or the whole folder).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from llmship import paths, procs
from llmship.errors import GraphError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_BOLT_PORT = 7687
DEFAULT_HTTP_PORT = 2480
DEFAULT_DATABASE = "llmship"
USER = "root"  # ArcadeDB's Bolt plugin authenticates against the server users; root always exists
BOLT_PLUGIN = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
PASSWORD_ENV = "LLMSHIP_GRAPH_PASSWORD"
_MODULE = "llmship.knowledge.graphstore.server"
# what a server started before the knowledge package was split runs as: still ours after an upgrade
_FORMER_MODULES = ("llmship.knowledge.server",)


class GraphServerInfo(BaseModel):
    pid: int
    host: str
    bolt_port: int
    http_port: int
    database: str
    user: str = USER
    root: str
    log: str
    started_at: float
    startup_s: float | None = None

    @property
    def uri(self) -> str:
        return f"bolt://{self.host}:{self.bolt_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


def graph_home(root: str | Path | None = None) -> Path:
    """The graph state folder: ``root`` when given, else ``LLMSHIP_HOME/graph``."""
    if root is None:
        return paths.sub("graph")
    folder = Path(root).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state_file(root: Path) -> Path:
    return root / "server.json"


def password(root: str | Path | None = None, *, create: bool = True) -> str | None:
    """``$LLMSHIP_GRAPH_PASSWORD``, else the 0600 ``password`` file (generated when ``create``)."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        if len(env) < 8:
            raise GraphError(f"{PASSWORD_ENV} must be at least 8 characters (ArcadeDB refuses shorter ones)")
        return env
    file = graph_home(root) / "password"
    if file.exists():
        if file.stat().st_mode & 0o077:
            file.chmod(0o600)
        return file.read_text().strip()
    if not create:
        return None
    secret = secrets.token_urlsafe(24)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
    return secret


port_in_use = procs.port_in_use


def _alive(pid: int) -> bool:
    if not procs.alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")  # a recycled pid must not be mistaken for our server
    if cmdline.exists():
        try:
            command = cmdline.read_bytes()
            return any(name.encode() in command for name in (_MODULE, *_FORMER_MODULES))
        except OSError:
            return False
    return True


def status(root: str | Path | None = None) -> GraphServerInfo | None:
    """The server we started under ``root`` if it is still alive (a stale state file is removed)."""
    file = _state_file(graph_home(root))
    if not file.exists():
        return None
    info = GraphServerInfo.model_validate_json(file.read_text())
    if _alive(info.pid):
        return info
    file.unlink(missing_ok=True)
    return None


def _check_bolt(uri: str, user: str, secret: str, database: str) -> str | None:
    """``None`` when a Bolt session runs ``RETURN 1`` in ``database``, else why not."""
    import neo4j

    try:
        with (neo4j.GraphDatabase.driver(uri, auth=(user, secret), connection_timeout=3.0,
                                         connection_acquisition_timeout=5.0) as driver,
              driver.session(database=database) as session):
            session.run("RETURN 1 AS ok").consume()
        return None
    except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError) as err:
        return " ".join(str(err).split())[:300] or type(err).__name__


def start(*, bolt_port: int = DEFAULT_BOLT_PORT, http_port: int = DEFAULT_HTTP_PORT, host: str = DEFAULT_HOST,
          database: str = DEFAULT_DATABASE, root: str | Path | None = None, wait_s: float = 120.0,
          heap: str | None = None) -> GraphServerInfo:
    """Start ArcadeDB detached (or return the one already running under ``root``); wait for Bolt."""
    folder = graph_home(root)
    running = status(folder)
    if running is not None:
        return running
    for port, flag in ((bolt_port, "--bolt-port"), (http_port, "--http-port")):
        if port_in_use(host, port):
            raise GraphError(f"port {port} on {host} is in use by another process; stop it or pass {flag}")
    secret = password(folder)
    assert secret is not None  # password() creates one when there is none
    log_path = folder / "server.log"
    cmd = [sys.executable, "-m", _MODULE, "run", "--root", str(folder), "--host", host,
           "--bolt-port", str(bolt_port), "--http-port", str(http_port), "--database", database]
    if heap:
        cmd += ["--heap", heap]
    env = {**os.environ, PASSWORD_ENV: secret}  # the secret travels in the environment, never in argv
    t0 = time.monotonic()
    proc = procs.spawn(cmd, log_path, env=env, cwd=folder)
    info = GraphServerInfo(pid=proc.pid, host=host, bolt_port=bolt_port, http_port=http_port, database=database,
                           root=str(folder), log=str(log_path), started_at=time.time())
    _state_file(folder).write_text(info.model_dump_json())

    def probe() -> str | None:
        return _check_bolt(info.uri, USER, secret, database) if port_in_use(host, bolt_port) else "Bolt not open yet"

    def exited(code: int) -> GraphError:
        _state_file(folder).unlink(missing_ok=True)
        return GraphError(f"the graph server exited with code {code}: "
                          f"{procs.last_error(log_path, ('Error', 'error', 'SEVERE', 'Exception'))} (log: {log_path})")

    why = procs.wait_ready(proc, probe, wait_s=wait_s, poll_s=0.3, exited=exited)
    if why is None:
        info.startup_s = round(time.monotonic() - t0, 2)
        _state_file(folder).write_text(info.model_dump_json())
        return info
    stop(folder)
    raise GraphError(f"the graph server did not answer on {info.uri} within {wait_s:.0f}s ({why}); log: {log_path}")


def stop(root: str | Path | None = None, timeout_s: float = 30.0) -> GraphServerInfo | None:
    """Stop our server under ``root``: SIGTERM its process group (a clean shutdown), then SIGKILL."""
    folder = graph_home(root)
    info = status(folder)
    if info is None:
        return None
    procs.terminate_group(info.pid, timeout_s, is_alive=_alive)
    _state_file(folder).unlink(missing_ok=True)
    return info


def default_heap() -> str:
    """A quarter of the machine's memory, between 1 and 4 GiB (``LLMSHIP_GRAPH_HEAP`` overrides). At 1 GiB the
    page cache could not hold a 100k-chunk full-text index: keyword p95 was 390 ms there, 91 ms at 4 GiB
    (benchmarks/rag_bench.py)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "1g"
    return f"{max(1, min(4, total // 4 // 2**30))}g"


def run(*, root: Path, host: str, bolt_port: int, http_port: int, database: str, heap: str) -> int:
    """The detached child: run ArcadeDB in this process until SIGTERM/SIGINT."""
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: done.set())
    secret = os.environ.get(PASSWORD_ENV) or password(root)
    os.chdir(root)  # ArcadeDB writes ./log/ relative to the working directory
    import arcadedb_embedded as adb
    from arcadedb_embedded.jvm import start_jvm

    t0 = time.monotonic()
    start_jvm(heap_size=heap, jvm_args=["-Xrs"])  # -Xrs: SIGTERM stays Python's, so stop() below runs
    server = adb.create_server(str(root / "arcadedb"), root_password=secret, config={
        "host": host, "http_port": http_port, "server_plugins": BOLT_PLUGIN, "bolt_port": bolt_port})
    try:
        server.start()
        server.create_database(database)  # opens it when it exists
        print(f"\nllmship graph: ArcadeDB {adb.__version__} ready in {time.monotonic() - t0:.1f}s, "
              f"bolt://{host}:{bolt_port} database {database!r}, http://{host}:{http_port}", flush=True)
        while not done.wait(1.0):
            pass
    finally:
        server.stop()
        print("\nllmship graph: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    sub = parser.add_subparsers(dest="action", required=True)
    r = sub.add_parser("run", help="run ArcadeDB in the foreground until SIGTERM (what `llmship graph start` spawns)")
    r.add_argument("--root", type=Path, required=True)
    r.add_argument("--host", default=DEFAULT_HOST)
    r.add_argument("--bolt-port", type=int, default=DEFAULT_BOLT_PORT)
    r.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    r.add_argument("--database", default=DEFAULT_DATABASE)
    r.add_argument("--heap", default=os.environ.get("LLMSHIP_GRAPH_HEAP") or default_heap())
    args = parser.parse_args(argv)
    return run(root=args.root.resolve(), host=args.host, bolt_port=args.bolt_port, http_port=args.http_port,
               database=args.database, heap=args.heap)


if __name__ == "__main__":
    code = main()
    # ArcadeDB is down and its files are closed (run's `finally`). What can be left are the Bolt plugin's connection
    # threads, blocked reading from clients that are still connected (a RAG service's driver pool), and the JVM waits
    # for them at exit: a connected client held every stop for stop()'s whole timeout, then got it SIGKILLed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
