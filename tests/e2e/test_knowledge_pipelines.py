"""End to end: ``zenml pipeline run`` of embedding_refresh and kg_update against an embedded ArcadeDB.

One module-scoped LLMSHIP_HOME (ZenML stack, graph server on free ports, embedding cache) holds the story:
1. embedding_refresh on a copy of part of the demo corpus fills the graph; a re-run embeds nothing;
2. kg_update links entities; a re-run converges to identical counts;
3. with the graph server stopped, a run fails with one clear line and a non-zero exit.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.e2e.test_deploy_llm import _env

pytestmark = pytest.mark.timeout(1800)  # whole pipeline runs through zenml
SUBFOLDERS = ("people", "companies", "towns", "notes", "attachments")


def _config(tmp: Path, name: str, folder: Path) -> Path:
    config = yaml.safe_load((REPO / f"configs/{name}.yaml").read_text())
    if name == "embedding_refresh":
        config["parameters"]["corpus"]["folder"] = str(folder)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(env: dict[str, str], name: str, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "scripts/pipeline.sh", name, str(config)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)


def _counts(env: dict[str, str]) -> dict[str, int]:
    code = ("from llmship.knowledge.graphstore.graph import GraphStore, GraphSettings; import json; "
            "g = GraphStore.connect(GraphSettings.from_env()); print(json.dumps(g.counts()))")
    out = subprocess.run(["python", "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return yaml.safe_load(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("knowledge-e2e")
    env = _env(tmp / "home")
    folder = tmp / "docs"
    for sub in SUBFOLDERS:
        shutil.copytree(REPO / "data/corpus/docs" / sub, folder / sub)
    subprocess.run(["python", "scripts/setup_stack.py", "--quiet"], cwd=REPO, env=env, check=True)
    subprocess.run(["llmship", "graph", "start", "--bolt-port", str(free_port()), "--http-port", str(free_port())],
                   cwd=REPO, env=env, check=True, capture_output=True)
    yield env, tmp, folder
    subprocess.run(["llmship", "graph", "stop"], cwd=REPO, env=env, capture_output=True)


def test_1_embedding_refresh_fills_the_graph_and_a_rerun_embeds_nothing(story):
    env, tmp, folder = story
    config = _config(tmp, "embedding_refresh", folder)
    first = _run(env, "embedding_refresh", config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    counts = _counts(env)
    documents = len([p for p in folder.rglob("*") if p.suffix in (".md", ".txt", ".html")]) - 1  # one is binary
    assert counts["Document"] == documents and counts["Chunk"] >= documents
    assert counts["FROM_DOCUMENT"] == counts["Chunk"]
    second = _run(env, "embedding_refresh", config)
    assert second.returncode == 0
    assert "embedded 0" in second.stdout + second.stderr and "wrote 0 chunks" in second.stdout + second.stderr
    assert _counts(env) == counts


def test_2_kg_update_links_entities_and_converges(story):
    env, tmp, folder = story
    config = _config(tmp, "kg_update", folder)
    first = _run(env, "kg_update", config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    counts = _counts(env)
    assert counts["Entity"] > 50 and counts["MENTIONS"] > counts["Entity"] and counts.get("CO_OCCURS", 0) > 0
    again = _run(env, "kg_update", config)
    assert again.returncode == 0
    assert _counts(env) == counts


def test_3_a_graph_that_is_down_is_one_clear_line(story):
    env, tmp, folder = story
    subprocess.run(["llmship", "graph", "stop"], cwd=REPO, env=env, check=True, capture_output=True)
    result = _run(env, "embedding_refresh", _config(tmp, "embedding_refresh", folder))
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("embedding_refresh failed: the embedded graph is not running")
    assert "llmship graph start" in last
