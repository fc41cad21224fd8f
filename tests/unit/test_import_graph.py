"""The core's packages depend one way: no import cycle between ``llmship``'s subpackages and top-level modules.

Every import counts, the ones inside functions too: a lazy import hides a cycle from Python, not from a reader.
The graph is read from the source (``ast``), so the test needs nothing installed and names the files of a cycle.
"""

from __future__ import annotations

import ast
import graphlib
import itertools
from pathlib import Path

import pytest

from tests.conftest import REPO

CORE = REPO / "llmship"
OUTSIDE = ("steps", "pipelines", "bentos", "tests", "benchmarks", "zenml", "bentoml")


def _unit(module: str, package: str) -> str | None:
    """The child of ``package`` that ``module`` is in: for ``llmship``, ``llmship.knowledge.retrieval.fusion`` → ``knowledge``;
    ``llmship`` itself → ``__init__``; a module outside ``package`` → None."""
    if module == package:
        return "__init__"
    if not module.startswith(package + "."):
        return None
    return module[len(package) + 1:].split(".")[0]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    rel = path.relative_to(REPO).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; an __init__'s own package
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]) if node.level \
                else node.module or ""
            found += [base.rstrip(".")] + [f"{base.rstrip('.')}.{alias.name}" for alias in node.names]
    return found


def _edges(package: str = "llmship") -> dict[str, dict[str, set[str]]]:
    """Among the children of ``package`` (subpackages and modules): unit → unit it imports → the files that do."""
    root = REPO / package.replace(".", "/")
    units = {p.stem if p.is_file() else p.name for p in root.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    edges: dict[str, dict[str, set[str]]] = {}
    for path in root.rglob("*.py"):
        source = _unit(".".join(path.relative_to(REPO).with_suffix("").parts), package)
        for name in _imports(path):
            target = _unit(name, package)
            if target is not None and target != source and target in units:
                edges.setdefault(str(source), {}).setdefault(target, set()).add(str(path.relative_to(REPO)))
    return edges


def _cycle(edges: dict[str, dict[str, set[str]]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter({unit: set(targets) for unit, targets in edges.items()}).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return None


@pytest.mark.parametrize(("package", "expected"), [
    ("llmship", {"config", "gateway", "engine", "openai", "rag", "knowledge"}),
    # knowledge's parts: graphstore at the bottom, ingest and kg on it, retrieval on all three
    ("llmship.knowledge", {"ingest", "kg", "retrieval"}),
])
def test_no_import_cycle_between_packages(package, expected):
    edges = _edges(package)
    assert expected <= set(edges)  # the graph was read, not empty
    cycle = _cycle(edges)
    assert cycle is None, "import cycle between llmship packages:\n" + "\n".join(
        f"{a} -> {b}: {sorted(edges[a][b])}" for a, b in itertools.pairwise(cycle))


def test_the_core_imports_no_step_pipeline_service_or_orchestrator():
    bad = [f"{path.relative_to(REPO)}: {name}" for path in CORE.rglob("*.py") for name in _imports(path)
           if name.split(".")[0] in OUTSIDE]
    assert not bad, bad


def test_the_check_finds_a_cycle_the_tree_once_had():
    """The gateway once imported ``error_body`` from ``openai``, which imports the gateway: put that edge back
    into the real graph and the check must name the cycle (the test above is not passing vacuously)."""
    edges = _edges()
    assert "gateway" in edges.get("openai", {})
    edges.setdefault("gateway", {})["openai"] = {"llmship/gateway/middleware.py"}
    cycle = _cycle(edges)
    assert cycle is not None and {"gateway", "openai"} <= set(cycle)


def test_tests_never_import_benchmarks():
    """Benchmarks may reuse the tests' helpers (``tests/helpers``); the other way round would tie the suite to
    scripts that are run by hand."""
    bad = [f"{path.relative_to(REPO)}: {name}" for path in (REPO / "tests").rglob("*.py") for name in _imports(path)
           if name.split(".")[0] == "benchmarks"]
    assert not bad, bad
