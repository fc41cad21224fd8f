"""Shared fixtures. Every test session gets its own LLMSHIP_HOME: tests never touch a user's state."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="llmship-test-home-"))
# Every variable that points at state: scripts/env.sh (which `make test` sources) aims ZENML_CONFIG_PATH and
# BENTOML_HOME at the checkout's own .llmship/, so without this the tests would read and write a user's stacks and
# Bentos. Set before any test module imports llmship, zenml or bentoml; put back at the end of the session.
_ISOLATED = {
    "LLMSHIP_HOME": str(_SESSION_HOME),
    "ZENML_CONFIG_PATH": str(_SESSION_HOME / "zenml"),
    "BENTOML_HOME": str(_SESSION_HOME / "bentoml"),
    "MLFLOW_TRACKING_URI": None,
}
_SAVED_ENV = {name: os.environ.get(name) for name in _ISOLATED}
for _name, _value in _ISOLATED.items():
    if _value is None:
        os.environ.pop(_name, None)
    else:
        os.environ[_name] = _value
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# the suite never reaches a model hub: scripts/env.sh exports HF_HUB_OFFLINE=0 for users who are online, which
# made a test of the offline error wait ~45 s for network retries on this machine, which has no hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

REPO = Path(__file__).resolve().parent.parent
CORPUS = (REPO / "data/eval/heldout.txt").read_text()
SUITES = ("unit", "integration", "reliability", "e2e")  # tests/<suite>/: each test is marked with its folder's name


def pytest_sessionfinish(session, exitstatus):
    """Put the state variables back as the session found them (a caller running pytest in-process keeps its own)."""
    for name, value in _SAVED_ENV.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session", autouse=True)
def isolated_environment():
    """Fail loudly if a test left a state variable pointing elsewhere (it must use ``home``/``llmship_home``)."""
    yield
    moved = {name: os.environ.get(name) for name, value in _ISOLATED.items()
             if value is not None and os.environ.get(name) != value}  # MLflow may export the URI it was given
    assert not moved, f"tests left state variables changed: {moved}"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Gemma-3 folder (no chat template, like the real base model)."""
    from tests.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-gemma", CORPUS)


@pytest.fixture(scope="session")
def tiny_built(tiny_model_dir, tmp_path_factory):
    """The tiny model after ``build_model`` (cached folder with the shipped chat template)."""
    from llmship.models import build_model

    return build_model(f"path:{tiny_model_dir}", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def tiny_onnx(tiny_built):
    from llmship.validate.onnx_export import export_onnx

    return export_onnx(tiny_built.folder, tiny_built.folder.parent / "onnx")


_ENGINE_HOST: list = []  # the session's engine host, once started
_LAST_ENGINE_TEST: list = []  # the last collected test that uses it


@pytest.fixture(scope="session")
def engine_host(tiny_built):
    """One real vLLM engine on the tiny model for the session, on its own event loop (tests/engine_host.py).

    It is stopped right after the last test that uses it (``pytest_runtest_teardown`` below), not at the end of
    the session: an idle vLLM engine still polls, and the rest of the suite wants both cores."""
    from tests.engine_host import EngineHost

    if not _ENGINE_HOST:
        _ENGINE_HOST.append(EngineHost(tiny_built.folder))
    yield _ENGINE_HOST[0]
    _close_engine_host()


def _close_engine_host() -> None:
    while _ENGINE_HOST:
        _ENGINE_HOST.pop().close()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the markers must be on the items by then
def pytest_collection_modifyitems(items):
    for item in items:  # the suite marker from the folder: `pytest -m unit` (make test-fast), `-m "not e2e"`, ...
        suite = item.path.relative_to(REPO / "tests").parts[0]
        if suite in SUITES:
            item.add_marker(suite)
        if "graph" in getattr(item, "fixturenames", ()) and "graph_server" not in _own_arguments(item):
            item.add_marker("graph")  # on the graph store alone: CI's neo4j job runs these (`-m graph`) on Neo4j 5
    users = [item for item in items if "engine_host" in getattr(item, "fixturenames", ())]
    _LAST_ENGINE_TEST[:] = users[-1:]
    if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get(_GROUPS_ENV):
        _write_groups(items, Path(os.environ[_GROUPS_ENV]))


# ---- pytest -n 2 (make test-fast, and the unit part of make test) ---------------------------------------------------
# One work unit per module (its module fixtures are built once), except that the modules on the session's vLLM engine
# form one unit, and so do the modules on the embedded graph server, and those on the tiny model's ONNX export (~15 s
# each time it is made): each server starts, and the export runs, on one worker, not on both, and the engine still
# stops right after its last user. pytest-xdist's own `--dist loadgroup` cannot say this
# under pytest 9 (it renames items through `item._nodeid`, which pytest 9 no longer reads), so the workers write the
# grouping they collect to a file and the controller's scheduler reads it.
_GROUPS_ENV = "LLMSHIP_TEST_GROUPS"


def pytest_configure(config):
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ[_GROUPS_ENV] = str(_SESSION_HOME / "xdist-groups.json")  # the workers inherit it


def _write_groups(items, path: Path) -> None:
    by_module: dict[str, list] = {}
    for item in items:
        by_module.setdefault(item.nodeid.split("::", 1)[0], []).append(item)
    groups = {}
    for module, tests in by_module.items():
        used = set().union(*(getattr(item, "fixturenames", ()) for item in tests))
        groups[module] = ("vllm" if "engine_host" in used else "graph" if "graph_server" in used
                          else "onnx" if "tiny_onnx" in used else module)
    tmp = path.with_suffix(f".{os.getpid()}")
    tmp.write_text(json.dumps(groups))
    tmp.replace(path)  # every worker collects the same items: whichever writes last, the content is the same


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByResource(LoadScopeScheduling):
        """pytest-xdist's per-module scheduling, with the resource groups above as the units."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:  # read once the workers have collected (scheduling starts after that)
                path = Path(os.environ.get(_GROUPS_ENV, "/nonexistent"))
                self.groups = json.loads(path.read_text()) if path.exists() else {}
            module = nodeid.split("::", 1)[0]
            return self.groups.get(module, module)

    return ByResource(config, log)


def _own_arguments(item) -> set[str]:
    """The fixtures a test names itself (a test that names ``graph_server`` wants the ArcadeDB server as such)."""
    try:
        return set(inspect.signature(item.obj).parameters)
    except (AttributeError, TypeError, ValueError):
        return set()


def pytest_runtest_teardown(item, nextitem):
    if _LAST_ENGINE_TEST and item is _LAST_ENGINE_TEST[0]:
        _close_engine_host()


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A fresh LLMSHIP_HOME for tests that write registry or server state."""
    monkeypatch.setenv("LLMSHIP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="session")
def empty_mlflow_db(tmp_path_factory) -> Path:
    """An MLflow SQLite store with every table made and nothing in it, made once per session by MLflow's own table
    initialisation (what a new store runs on first open). That first open replays MLflow's whole migration
    history, 1.5-2.5 s a time here; a test that only needs an empty registry copies this file instead."""
    import sqlalchemy
    from mlflow.store.db.utils import _initialize_tables

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        _initialize_tables(engine)
    finally:
        engine.dispose()
    return path


@pytest.fixture()
def registry_home(home, empty_mlflow_db) -> Path:
    """``home`` whose registry store already exists, empty: as new a registry as ``home``'s, without the
    migrations (see ``empty_mlflow_db``). Tests of how a store gets made use ``home``."""
    store = home / "mlflow" / "mlflow.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_mlflow_db, store)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def llmship_home(path: Path) -> Iterator[Path]:
    """Point LLMSHIP_HOME (registry, serve state, graph state) at ``path`` for a block, then restore it."""
    old = os.environ.get("LLMSHIP_HOME")
    os.environ["LLMSHIP_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("LLMSHIP_HOME", None)
        else:
            os.environ["LLMSHIP_HOME"] = old


def register_champion(name: str, built, serve_backend: str):
    """Register a built model folder in the current home's MLflow registry and make it ``champion``."""
    from llmship.registry import ModelRegistry
    from llmship.validate.gates import GateReport

    registry = ModelRegistry()
    ref = registry.register(name, built.folder.parent, tags={"serve_backend": serve_backend})
    registry.promote(name, ref.version, GateReport(results=[]))
    return registry


def fresh_minute(margin_s: float = 15.0) -> None:
    """Wait until the current calendar minute has ``margin_s`` left. The gateway's sliding windows are keyed by
    minute: a test that counts exact remaining requests or tokens must not straddle two windows (the previous
    window is then only partly weighted, and the count shifts)."""
    while time.time() % 60 > 60 - margin_s:
        time.sleep(0.25)


@pytest.fixture(scope="session")
def embedder():
    """The offline embedding model, loaded once for every test that embeds (one thread: CI has two cores)."""
    from llmship.knowledge.embedder import Embedder

    return Embedder.load(threads=1)


@pytest.fixture(scope="session")
def extractor():
    """The offline spaCy entity extractor, loaded once."""
    from llmship.knowledge.kg.entities import EntityExtractor

    return EntityExtractor()


NEO4J = os.environ.get("LLMSHIP_TEST_GRAPH") == "neo4j"  # CI's Neo4j-dialect job: NEO4J_URI etc. point at neo4j:5


@pytest.fixture(scope="session")
def graph_server(tmp_path_factory):
    """Embedded ArcadeDB (Bolt + HTTP on free ports, data in a temp folder) for the whole session, schema ready.

    Started once: a JVM start costs seconds. Stopped (SIGTERM, clean shutdown) at the end. With
    ``LLMSHIP_TEST_GRAPH=neo4j`` the tests run against the Neo4j 5 that ``NEO4J_URI`` names instead.
    """
    if NEO4J:
        from llmship.knowledge.graphstore.graph import GraphSettings

        _claim_neo4j(GraphSettings.from_env())
        yield None
        return
    from llmship.knowledge.graphstore import server
    from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore

    root = tmp_path_factory.mktemp("graph")
    info = server.start(bolt_port=free_port(), http_port=free_port(), root=root)
    try:
        with GraphStore.connect(GraphSettings.for_server(info)) as store:
            store.ensure_schema()
        yield info
    finally:
        server.stop(root)


_TEST_MARK = "LlmshipTestDatabase"  # the node that says "this suite owns this database" (Neo4j only)


def _neo4j_query(settings, statement: str) -> list:
    import neo4j

    auth = (settings.user, settings.password.get_secret_value())
    with neo4j.GraphDatabase.driver(settings.uri, auth=auth) as driver:
        return driver.execute_query(statement, database_=settings.database).records


def _claim_neo4j(settings) -> None:
    """Every graph test empties the database first: refuse, in one line, a Neo4j database that holds nodes this
    suite did not write (a NEO4J_URI left pointing at real data), instead of deleting them."""
    marks = _neo4j_query(settings, f"MATCH (m:{_TEST_MARK}) RETURN count(m) AS n")[0]["n"]
    nodes = _neo4j_query(settings, "MATCH (n) RETURN count(n) AS n")[0]["n"]
    if nodes and not marks:
        pytest.exit(f"the Neo4j database {settings.database!r} at {settings.uri} holds {nodes} nodes this test suite "
                    "did not write; the graph tests empty it, so point NEO4J_URI/NEO4J_DATABASE at an empty one",
                    returncode=2)
    _mark_neo4j(settings)


def _mark_neo4j(settings) -> None:
    _neo4j_query(settings, f"MERGE (:{_TEST_MARK} {{id: 'llmship-tests'}})")


@pytest.fixture()
def graph(graph_server):
    """A connected ``GraphStore`` on the session's ArcadeDB, emptied before the test."""
    from llmship.knowledge.graphstore.graph import GraphSettings, GraphStore

    settings = GraphSettings.from_env() if graph_server is None else GraphSettings.for_server(graph_server)
    store = GraphStore.connect(settings)
    if graph_server is None:
        store.ensure_schema()
    store.clear()
    if graph_server is None:
        _mark_neo4j(settings)
    try:
        yield store
    finally:
        store.close()
