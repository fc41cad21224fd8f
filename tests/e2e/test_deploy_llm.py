"""End to end: ``zenml pipeline run pipelines.deploy_llm.deploy_llm`` on the default offline model.

One module-scoped LLMSHIP_HOME holds the whole story, in order:
1. a passing run builds, validates, registers (champion) and serves version 1;
2. a run with an impossible perplexity gate registers version 2 as challenger,
   exits non-zero with a one-line reason, and leaves champion and the server alone;
3. a passing re-run (caches warm) makes version 3 champion, version 1 previous,
   and the running server swaps it in place (no restart), which now reports version 3: the engine check ran in that
   server, on the engine it then serves (one vLLM start; run 2's check staged one too, stopped when its gate failed);
4. rollback (a swap, then a restart); 5. a hosted release of the served model through the same pipeline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.timeout(2400)  # four whole deploys; the first builds every cache
NAME = "gemma3-270m"
RAG_PORT: list[int] = []  # the story's RAG service port (one for all runs: a re-run replaces that server)


def _env(home: Path) -> dict[str, str]:
    """The environment scripts/env.sh builds, for this test's home."""
    script = f"export LLMSHIP_HOME={home}; unset BENTOML_HOME; source {REPO}/scripts/env.sh; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def _config(tmp: Path, port: int, *, lean: bool = False, **gates) -> Path:
    config = yaml.safe_load((REPO / "configs/deploy_llm.yaml").read_text())
    params = config["parameters"]
    params["benchmark"].update(batches=[1, 4], max_tokens=16, repeats=2)
    # test_1 proves the ONNX export, its parity gates and the benchmark table; the later deploys (a failing gate,
    # a promoting re-run) are about the registry and the served process, so they skip the export (its gates are
    # then skipped, not passed) and run the smallest benchmark: ~3 min less a deploy on 2 cores
    if lean:
        params["export"]["enabled"] = False
        params["benchmark"].update(batches=[1], max_tokens=8, repeats=1)
    params["serve"]["port"] = port
    # vLLM without torch.compile: ~30 s a start instead of ~80-100 s, and this story starts it eight times (an
    # engine check and a service per deploy, two rollbacks); compiled serving is measured by the benchmarks
    params["serve"]["enforce_eager"] = True
    params["serve"]["rag_port"] = RAG_PORT[0]
    params["gates"].update(gates)
    path = tmp / f"deploy-{len(list(tmp.glob('deploy-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(env: dict[str, str], config: Path) -> subprocess.CompletedProcess:
    cmd = ["zenml", "pipeline", "run", "pipelines.deploy_llm.deploy_llm", "-c", str(config), "-s", "llmship"]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    home = tmp / "home"
    env = _env(home)
    subprocess.run(["python", "scripts/setup_stack.py", "--quiet"], cwd=REPO, env=env, check=True)
    port = free_port()
    RAG_PORT[:] = [free_port()]
    yield env, tmp, port, home
    subprocess.run(["llmship", "serve", "stop"], cwd=REPO, env=env, capture_output=True)


def _registry(env, monkeypatch):
    """The story's registry, read in this process: LLMSHIP_HOME points at the story's home for this test only."""
    monkeypatch.setenv("LLMSHIP_HOME", env["LLMSHIP_HOME"])
    from llmship.registry import ModelRegistry

    return ModelRegistry()


def test_1_first_deploy_serves_a_validated_champion(story, monkeypatch):
    env, tmp, port, _home = story
    result = _run(env, _config(tmp, port))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    registry = _registry(env, monkeypatch)
    champion = registry.by_alias(NAME, "champion")
    assert champion is not None and champion.version == "1"
    assert champion.tags["validation_status"] == "passed"
    metrics = registry.metrics(champion)
    assert champion.tags["serve_backend"] == "vllm"
    assert metrics["bench_vllm_cpu_b4_decode_tok_s"] > 0 and metrics["bench_vllm_cpu_b1_itl_s"] > 0
    # what serves (vLLM, bf16) computes what was validated (the fp32 reference)
    assert metrics["engine_parity_top1_agreement"] >= 0.95
    assert metrics["engine_parity_greedy_close"] == 1.0
    assert metrics["smoke_pass_rate"] == 1.0
    for tag in ("git_commit", "config_hash", "zenml_run_id", "model_source"):
        assert champion.tags.get(tag), tag
    assert metrics["parity_top1_agreement"] >= 0.99
    assert metrics["parity_max_abs_logit_diff"] < 0.01
    assert 1 < metrics["perplexity"] < 60
    assert metrics["decode_tok_s"] > 0
    artifacts = [a.path for a in registry.client.list_artifacts(champion.run_id, "reports")]
    assert {"reports/parity.json", "reports/engine_parity.json", "reports/benchmark.json",
            "reports/benchmark.png"} <= set(artifacts)
    model_dir = registry.resolve(f"models:/{NAME}@champion")[1]
    assert (model_dir / "onnx" / "model.onnx").exists() and (model_dir / "hf" / "chat_template.jinja").exists()

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=NAME, messages=[{"role": "user", "content": "Name three primary colors."}], max_tokens=16)
    assert raw.headers["x-llmship-model-version"] == f"{NAME}/1"
    assert raw.parse().choices[0].message.content.strip()

    info = subprocess.run(["llmship", "serve", "info"], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert f"http://127.0.0.1:{port}" in info.stdout and "version 1" in info.stdout and "curl" in info.stdout
    rag_url = f"http://127.0.0.1:{RAG_PORT[0]}"
    assert f"{rag_url}/v1" in info.stdout  # the RAG service shipped next to the chat model
    assert [m["id"] for m in httpx.get(f"{rag_url}/v1/models", timeout=10).json()["data"]] == ["rag"]
    assert not (REPO / "mlruns").exists()


def test_2_failing_gate_never_yields_champion_and_does_not_ship(story, monkeypatch):
    env, tmp, port, _home = story
    result = _run(env, _config(tmp, port, lean=True, max_perplexity=1.0))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "is not released: perplexity" in output
    # the check ran in the running service (same settings), and the engine it staged there is stopped again
    assert f"staged in the service at http://127.0.0.1:{port}" in output
    assert f"the engine checked in the service on port {port} is stopped" in output

    registry = _registry(env, monkeypatch)
    failed = registry.get(NAME, "2")
    assert failed.aliases == ["challenger"]
    assert failed.tags["validation_status"] == "failed"
    assert "perplexity" in failed.tags["gate_failures"]
    assert registry.by_alias(NAME, "champion").version == "1"
    served = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert served.headers["x-llmship-model-version"] == f"{NAME}/1"


def test_3_rerun_promotes_and_swaps_the_new_version_in_place(story, monkeypatch):
    """Only the model version changed (same Bento content, settings, port): the running service swaps its engine
    in place instead of restarting, and the RAG service keeps running."""
    env, tmp, port, home = story
    before = json.loads((home / "last-deploy.json").read_text())
    result = _run(env, _config(tmp, port, lean=True))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    registry = _registry(env, monkeypatch)
    champion = registry.by_alias(NAME, "champion")
    assert champion.version == "3"
    judged = {r["name"] for r in json.loads(champion.tags["gate_report"])}
    # no export: the ONNX parity gates were not judged (absent, not passed); the rest, champion comparison included
    assert not judged & {"parity_max_abs_logit_diff", "parity_top1_agreement", "parity_greedy_agreement"}
    assert {"engine_parity_greedy_close", "perplexity", "perplexity_vs_champion", "decode_tok_s"} <= judged
    assert registry.by_alias(NAME, "previous").version == "1"
    assert registry.by_alias(NAME, "challenger").version == "2"
    served = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert served.headers["x-llmship-model-version"] == f"{NAME}/3"
    summary = json.loads((home / "last-deploy.json").read_text())
    assert summary["model_version"] == "3" and summary["previous"] == "1"
    assert summary["swapped"] is True and summary["pid"] == before["pid"], result.stdout[-2000:]
    # one vLLM start in this re-deploy: the engine check ran on the engine the service then swapped in
    assert summary["staged"] is True
    assert f"staged in the service at http://127.0.0.1:{port}" in result.stdout + result.stderr
    assert "swapped in place, no restart" in result.stdout + result.stderr  # ZenML logs step output to either


def test_4_rollback_serves_previous_and_status_shows_it(story, monkeypatch):
    """`llmship rollback` moves champion back to version 1 and the running chat service swaps its engine in place
    (same process; the RAG service keeps running); a failed challenger is never a rollback target; a second
    rollback, with the chat service stopped, undoes by restarting it on the same Bento."""
    env, _, port, home = story
    deployed = json.loads((home / "last-deploy.json").read_text())
    bento = deployed["bento"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["llmship", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
                              check=False)

    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert f"chat  http://127.0.0.1:{port}" in status.stdout and f"serves {NAME}/3 (champion)" in status.stdout
    refused = cli("rollback", "--to", "2")
    assert refused.returncode != 0 and "did not pass its gates" in refused.stderr

    done = cli("rollback")
    assert done.returncode == 0, done.stderr
    assert "champion is now version 1 (was 3" in done.stdout and "swapped in place" in done.stdout, done.stdout
    registry = _registry(env, monkeypatch)
    assert registry.by_alias(NAME, "champion").version == "1"
    assert registry.by_alias(NAME, "previous").version == "3"
    served = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert served.headers["x-llmship-model-version"] == f"{NAME}/1"
    summary = json.loads((home / "last-deploy.json").read_text())
    assert (summary["model_version"], summary["rolled_back_from"], summary["bento"]) == ("1", "3", bento)
    assert summary["pid"] == deployed["pid"]  # the same server: no restart

    rag = httpx.get(f"http://127.0.0.1:{RAG_PORT[0]}/v1/models", timeout=10)  # kept running; answers with v1 now
    assert rag.status_code == 200

    status = cli("status", "--json")
    services = json.loads(status.stdout)["services"]
    assert {"kind": "chat", "serves": f"{NAME}/1", "alias": "champion"}.items() <= next(
        s for s in services if s["kind"] == "chat").items()
    assert any(s["kind"] == "rag" and s["serves"] == f"http://127.0.0.1:{port}/v1" for s in services)

    assert cli("serve", "stop", "--port", str(port)).returncode == 0
    undo = cli("rollback")
    assert undo.returncode == 0, undo.stderr
    assert f"bento {bento} (reused)" in undo.stdout, undo.stdout
    served = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10)
    assert served.headers["x-llmship-model-version"] == f"{NAME}/3"


def test_5_a_hosted_release_goes_through_the_same_pipeline(story, monkeypatch):
    """configs/deploy_hosted.yaml against the story's chat service: a hosted source takes the steps that apply
    (parity recorded skipped, not passed), is registered with its upstream's description, promoted, and served by
    the running service beside its model. A key variable that is not set is one line, before anything is
    registered."""
    env, tmp, port, home = story
    config = yaml.safe_load((REPO / "configs/deploy_hosted.yaml").read_text())
    params = config["parameters"]
    params["build"]["source"] = f"openai:http://127.0.0.1:{port}/v1#{NAME}"
    params["benchmark"].update(batches=[1, 2], max_tokens=8, repeats=1)
    params["serve"]["port"] = port
    hosted = params["registry"]["name"]

    params["build"]["api_key_env"] = "LLMSHIP_E2E_UNSET_KEY"
    missing = tmp / "hosted-missing-key.yaml"
    missing.write_text(yaml.safe_dump(config))
    failed = _run({k: v for k, v in env.items() if k != "LLMSHIP_E2E_UNSET_KEY"}, missing)
    assert failed.returncode != 0
    assert "build.api_key_env names LLMSHIP_E2E_UNSET_KEY, which is not set" in failed.stdout + failed.stderr
    registry = _registry(env, monkeypatch)
    assert registry.versions(hosted) == []

    params["build"]["api_key_env"] = None
    path = tmp / "hosted.yaml"
    path.write_text(yaml.safe_dump(config))
    done = _run(env, path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ref = registry.by_alias(hosted, "champion")
    assert ref.version == "1" and ref.tags["serve_backend"] == "hosted"
    gates = {g["name"]: g for g in registry.gate_results(ref)}
    assert gates["parity_max_abs_logit_diff"]["skipped"] and not gates["parity_max_abs_logit_diff"]["passed"]
    assert gates["perplexity"]["passed"] and gates["smoke_pass_rate"]["passed"]

    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0)
    assert {NAME, hosted} <= {m.id for m in client.models.list().data}
    ask = {"messages": [{"role": "user", "content": "Name three colors."}], "max_tokens": 8, "temperature": 0}
    raw = client.chat.completions.with_raw_response.create(model=hosted, **ask)
    assert raw.headers["x-llmship-model-version"] == f"{hosted}/1"
    assert raw.parse().choices[0].message.content == client.chat.completions.create(
        model=NAME, **ask).choices[0].message.content
    assert hosted in json.loads((home / "last-deploy.json").read_text())["serve_config"]["hosted"]
