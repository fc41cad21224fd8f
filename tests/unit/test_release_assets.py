"""scripts/release_assets.py against a real SQLite-backed MLflow registry: a version registered the way the
``register`` step registers it (``llmship.release.register_release``), promoted by the real gates, then collected
into the files the GitHub release attaches."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmship.models.build import BuiltModel
from llmship.models.card import model_card
from llmship.registry import ModelRegistry
from llmship.release import collect_metrics, promote_release, register_release
from llmship.validate.benchmark import BenchmarkReport, BenchRow, chart
from llmship.validate.gates import GateThresholds
from llmship.validate.quality import PerplexityReport, SmokeReport, SmokeResult
from tests.conftest import REPO

SCRIPT = REPO / "scripts/release_assets.py"
NAME = "tiny-release"
LINEAGE = {"git_commit": "0123abcd", "config_hash": "cafe", "zenml_run_id": "run-1", "zenml_pipeline": "deploy_llm"}


def _script():
    spec = importlib.util.spec_from_file_location("release_assets", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release_assets = _script()


def _built(root: Path, label: str) -> BuiltModel:
    hf = root / f"model-{label}" / "hf"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "label": label}))
    (hf / "model.safetensors").write_bytes(label.encode() * 64)
    return BuiltModel(source=f"path:/models/{label}", identity=f"{label}-identity-0123456789", path=str(hf),
                      model_type="gemma3_text", num_parameters=268_000_000, max_position_embeddings=32768,
                      chat_template="shipped:gemma", dtype="bfloat16", from_gguf=False)


def _reports(tok_s: float) -> tuple[PerplexityReport, SmokeReport, BenchmarkReport]:
    ppl = PerplexityReport(tokens=900, perplexity=21.5, window=512, stride=256, seconds=3.0)
    smoke = SmokeReport(results=[SmokeResult(id="hello", text="Hi!", completion_tokens=3, finish_reason="stop",
                                             ok=True)], pass_rate=1.0)
    rows = [BenchRow(backend="vllm", device="cpu", batch=b, decode_tok_s=tok_s * b, output_tok_s=tok_s * b,
                     ttft_s=0.2, peak_rss_mb=800.0) for b in (1, 4)]
    return ppl, smoke, BenchmarkReport(rows=rows, gpu="unavailable", max_tokens=16, threads=0)


def _release(registry: ModelRegistry, root: Path, label: str, tok_s: float) -> dict:
    """Register one version like the ``register`` step and promote it like ``promote``; what went in."""
    built = _built(root, label)
    ppl, smoke, bench = _reports(tok_s)
    png = chart(bench, root / f"chart-{label}.png")
    ref = register_release(registry, NAME, built, parity=None, ppl=ppl, smoke=smoke, bench=bench, chart=str(png),
                           lineage=LINEAGE, params={"experiment": "deploy_llm"})
    promotion = promote_release(registry, ref, GateThresholds(), with_parity=False)
    assert promotion.status == "champion"
    metrics = collect_metrics(None, ppl, smoke, bench)
    return {"ref": ref, "built": built, "metrics": metrics, "chart": png.read_bytes(),
            "card": model_card(NAME, built, metrics, LINEAGE)}


def _deployed(home: Path, version: str, bento: str) -> None:
    """The summary the ``deploy`` step leaves behind (steps/release/deploy.py: write_deploy_summary)."""
    (home / "last-deploy.json").write_text(json.dumps({"url": "http://127.0.0.1:3000", "bento": bento,
                                                       "model_name": NAME, "model_version": version,
                                                       "alias": "champion", "previous": None}))


@pytest.fixture()
def registry(registry_home, tmp_path, monkeypatch) -> ModelRegistry:
    monkeypatch.chdir(tmp_path)  # nothing may land in the cwd (./mlruns)
    return ModelRegistry()


def test_champion_card_chart_and_release_json(registry, home, tmp_path, capsys):
    first = _release(registry, tmp_path, "v1", tok_s=10.0)
    _deployed(home, "1", "llmship-chat:abc123")
    out = tmp_path / "dist"

    assert release_assets.main(["--name", NAME, "--out", str(out), "--image", "ghcr.io/acme/llmship-chat:v1.0.0"]) == 0
    assert f"{NAME} version 1 (bento llmship-chat:abc123)" in capsys.readouterr().out

    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "benchmark.png", "release.json"]
    assert (out / "MODEL_CARD.md").read_text() == first["card"]
    assert (out / "MODEL_CARD.md").read_text().startswith(f"# {NAME}\n")
    assert (out / "benchmark.png").read_bytes() == first["chart"]
    assert first["chart"].startswith(b"\x89PNG\r\n\x1a\n")
    release = json.loads((out / "release.json").read_text())
    assert release["name"] == NAME and release["version"] == "1"
    assert release["model_uri"] == f"models:/{NAME}/1" and release["run_id"] == first["ref"].run_id
    assert release["metrics"] == pytest.approx(first["metrics"])
    assert release["metrics"]["perplexity"] == pytest.approx(21.5)
    assert release["bento"] == "llmship-chat:abc123"
    assert release["image"] == "ghcr.io/acme/llmship-chat:v1.0.0"
    assert release["lineage"] == {**LINEAGE, "model_source": "path:/models/v1",
                                  "model_identity": "v1-identity-0123456789", "serve_backend": "vllm",
                                  "validation_status": "passed"}


def test_the_newest_champion_is_collected_and_a_stale_deploy_is_not_its_bento(registry, home, tmp_path, capsys):
    _release(registry, tmp_path, "v1", tok_s=10.0)
    _deployed(home, "1", "llmship-chat:first")
    second = _release(registry, tmp_path, "v2", tok_s=12.0)
    out = tmp_path / "dist"

    # last-deploy.json names version 1: its Bento does not serve version 2
    assert release_assets.main(["--name", NAME, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("release_assets: error: no Bento is recorded for tiny-release version 2")
    assert not out.exists()

    assert release_assets.main(["--name", NAME, "--out", str(out), "--bento", "llmship-chat:second"]) == 0
    release = json.loads((out / "release.json").read_text())
    assert (release["version"], release["bento"]) == ("2", "llmship-chat:second")
    assert "image" not in release
    assert (out / "MODEL_CARD.md").read_text() == second["card"]
    assert (out / "benchmark.png").read_bytes() == second["chart"]


def test_the_release_config_names_the_registered_model():
    assert release_assets.registry_name(REPO / "configs/deploy_llm.release.yaml") == "gemma3-270m"


def test_no_champion_is_one_line_and_exit_1(registry, home, tmp_path):
    """The command line, as the release workflow runs it, on a registry with no champion."""
    registry.register(NAME, _built(tmp_path, "pending").folder.parent)  # a version, but never promoted
    out = tmp_path / "dist"
    env = {**os.environ, "LLMSHIP_HOME": str(home), "MLFLOW_LOGGING_LEVEL": "WARNING"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--name", NAME, "--out", str(out), "--bento", "x:y"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        (f"release_assets: error: no version of '{NAME}' is champion in the registry at {registry.tracking_uri}; "
         "run the deploy_llm pipeline first")]
    assert proc.stdout == "" and not out.exists()
