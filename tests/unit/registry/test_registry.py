"""The MLflow registry under LLMSHIP_HOME: versions, aliases, promotion, resolve."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llmship.errors import GateFailed, RegistryError
from llmship.models import build_model
from llmship.registry import ModelRegistry
from llmship.release import promote_release
from llmship.validate.gates import GateThresholds, evaluate_gates

PASSING = {
    "parity_max_abs_logit_diff": 1e-4, "parity_top1_agreement": 1.0, "parity_greedy_agreement": 1.0,
    "engine_parity_top1_agreement": 1.0, "engine_parity_greedy_close": 1.0,
    "perplexity": 20.0, "smoke_pass_rate": 1.0, "decode_tok_s": 30.0, "ttft_s": 0.2,
}
PASS = evaluate_gates(PASSING, GateThresholds())
FAIL = evaluate_gates({**PASSING, "smoke_pass_rate": 0.0}, GateThresholds())


@pytest.fixture()
def registry(registry_home, tmp_path, monkeypatch) -> ModelRegistry:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # anything written relative to the cwd would land here
    return ModelRegistry()


def tiny_folder(root: Path, label: str) -> Path:
    folder = root / f"model-{label}"
    (folder / "hf").mkdir(parents=True)
    (folder / "hf" / "config.json").write_text(json.dumps({"label": label}))
    (folder / "hf" / "model.safetensors").write_bytes(label.encode() * 64)
    (folder / "llmship-build.json").write_text("{}")
    (folder / ".leftover.tmp-1").mkdir()  # an interrupted build's temp folder: never registered
    return folder


def register_three(registry: ModelRegistry, root: Path):
    return [registry.register("x", tiny_folder(root, f"v{i}"), metrics={**PASSING, "perplexity": 20.0 + i},
                              tags={"git_commit": f"c{i}"}) for i in (1, 2, 3)]


def test_register_three_versions_under_home(registry, home, tmp_path):
    refs = register_three(registry, tmp_path)
    assert [r.version for r in refs] == ["1", "2", "3"]
    assert [r.version for r in registry.versions("x")] == ["1", "2", "3"]
    assert registry.tracking_uri == f"sqlite:///{home.resolve() / 'mlflow' / 'mlflow.db'}"
    for i, ref in enumerate(refs, start=1):
        assert ref.tags["validation_status"] == "pending"
        assert ref.tags["git_commit"] == f"c{i}"
        assert ref.aliases == []
        assert registry.metrics(ref)["perplexity"] == 20.0 + i
        _, local = registry.resolve(ref.uri)
        assert local.is_relative_to(home.resolve())
        assert json.loads((local / "hf" / "config.json").read_text()) == {"label": f"v{i}"}
        assert (local / "llmship-build.json").is_file()
        assert not any(p.name.startswith(".") for p in local.rglob("*"))
    assert not (tmp_path / "cwd" / "mlruns").exists()
    assert list((tmp_path / "cwd").iterdir()) == []


def test_promotion_moves_aliases(registry, tmp_path):
    v1, v2, v3 = register_three(registry, tmp_path)

    first = registry.promote("x", v1.version, PASS)
    assert (first.status, first.previous_champion) == ("champion", None)
    assert registry.by_alias("x", "champion").version == "1"

    second = registry.promote("x", v2.version, PASS)
    assert (second.status, second.previous_champion) == ("champion", "1")
    assert registry.by_alias("x", "champion").version == "2"
    assert registry.by_alias("x", "previous").version == "1"
    assert registry.get("x", "2").tags["validation_status"] == "passed"

    third = registry.promote("x", v3.version, FAIL)
    assert third.status == "challenger"
    assert "smoke_pass_rate" in third.reason
    v3_now = registry.get("x", "3")
    assert v3_now.aliases == ["challenger"]
    assert v3_now.tags["validation_status"] == "failed"
    assert "smoke_pass_rate" in v3_now.tags["gate_failures"]
    assert registry.by_alias("x", "champion").version == "2"
    assert registry.by_alias("x", "previous").version == "1"

    ref, local = registry.resolve("models:/x@champion")
    assert ref.version == "2"
    assert json.loads((local / "hf" / "config.json").read_text()) == {"label": "v2"}
    assert (local / "hf" / "model.safetensors").read_bytes() == b"v2" * 64
    assert registry.resolve("models:/x@previous")[0].version == "1"
    assert registry.resolve("models:/x/3")[0].version == "3"


def test_promote_release_never_makes_a_failing_version_champion(registry, tmp_path):
    bad = registry.register("x", tiny_folder(tmp_path, "bad"), metrics={**PASSING, "perplexity": 1000.0})
    with pytest.raises(GateFailed) as err:
        promote_release(registry, bad, GateThresholds())
    assert "perplexity" in str(err.value) and "\n" not in str(err.value)
    assert err.value.code == "gate_failed"
    assert registry.by_alias("x", "champion") is None
    assert registry.get("x", bad.version).aliases == ["challenger"]

    good = registry.register("x", tiny_folder(tmp_path, "good"), metrics=PASSING)
    assert promote_release(registry, good, GateThresholds()).status == "champion"

    # under every absolute threshold, but 50% worse than the champion's perplexity
    worse = registry.register("x", tiny_folder(tmp_path, "worse"), metrics={**PASSING, "perplexity": 30.0})
    with pytest.raises(GateFailed, match="perplexity_vs_champion"):
        promote_release(registry, worse, GateThresholds())
    assert registry.by_alias("x", "champion").version == good.version
    assert registry.by_alias("x", "challenger").version == worse.version
    assert registry.get("x", worse.version).tags["validation_status"] == "failed"


def test_promote_release_without_parity_skips_parity_gates(registry, tmp_path):
    no_parity = {k: v for k, v in PASSING.items() if not k.startswith("parity_")}
    ref = registry.register("x", tiny_folder(tmp_path, "torch"), metrics=no_parity)
    with pytest.raises(GateFailed, match="parity_top1_agreement missing"):
        promote_release(registry, ref, GateThresholds())
    ref2 = registry.register("x", tiny_folder(tmp_path, "torch2"), metrics=no_parity)
    assert promote_release(registry, ref2, GateThresholds(), with_parity=False).status == "champion"


def test_resolve_missing_alias_or_bad_uri(registry, tmp_path):
    with pytest.raises(RegistryError, match="has alias 'champion'"):
        registry.resolve("models:/nothing@champion")
    registry.register("x", tiny_folder(tmp_path, "v1"))
    with pytest.raises(RegistryError, match="no version of 'x' has alias 'champion'"):
        registry.resolve("models:/x@champion")
    with pytest.raises(RegistryError, match="not a models:/ URI"):
        registry.resolve("runs:/abc/model")


@pytest.mark.parametrize("uri", ["models:/x/2", "models:/x/latest"])
def test_resolve_missing_version_raises_registry_error(registry, tmp_path, uri):
    registry.register("x", tiny_folder(tmp_path, "v1"))
    with pytest.raises(RegistryError, match="x"):
        registry.resolve(uri)


def test_registered_version_is_immutable_when_the_path_source_is_resaved(registry, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    src = shutil.copytree(tiny_model_dir, tmp_path / "src" / "tiny-gemma")
    built = build_model(f"path:{src}", cache_dir=tmp_path / "cache")
    ref = registry.register("x", built.folder.parent)
    _, local = registry.resolve(ref.uri)
    registered = (local / "hf" / "config.json").read_text()

    model = AutoModelForCausalLM.from_pretrained(str(src))  # e.g. fine-tune, then save back where it came from
    model.config.final_logit_softcapping = 30.0
    model.save_pretrained(src)
    assert (src / "config.json").read_text() != registered

    assert (registry.resolve(ref.uri)[1] / "hf" / "config.json").read_text() == registered


def _released(registry: ModelRegistry, tmp_path: Path):
    """v1, v2 champions in turn (v2 champion, v1 previous), v3 a failed challenger."""
    register_three(registry, tmp_path)
    registry.promote("x", "1", PASS)
    registry.promote("x", "2", PASS)
    registry.promote("x", "3", FAIL)


def _aliases(registry: ModelRegistry) -> dict[str, str | None]:
    return {alias: getattr(registry.by_alias("x", alias), "version", None)
            for alias in ("champion", "previous", "challenger")}


def test_rollback_moves_champion_to_previous_and_back(registry, tmp_path):
    _released(registry, tmp_path)
    moved = registry.rollback("x")
    assert (moved.from_version, moved.to_version, moved.previous_before) == ("2", "1", "1")
    assert _aliases(registry) == {"champion": "1", "previous": "2", "challenger": "3"}
    assert registry.resolve("models:/x@champion")[0].version == "1"
    assert registry.get("x", "2").tags["rolled_back_at"]
    assert registry.get("x", "1").tags["restored_from"] == "2"

    again = registry.rollback("x")  # a second rollback undoes the first, like `kubectl rollout undo`
    assert (again.from_version, again.to_version) == ("1", "2")
    assert _aliases(registry) == {"champion": "2", "previous": "1", "challenger": "3"}


def test_rollback_to_a_named_version_and_undo(registry, tmp_path):
    _released(registry, tmp_path)
    moved = registry.rollback("x", to="1")
    assert _aliases(registry)["champion"] == "1"
    registry.undo_rollback(moved)
    assert _aliases(registry) == {"champion": "2", "previous": "1", "challenger": "3"}
    assert "rolled_back_at" not in registry.get("x", "2").tags


@pytest.mark.parametrize(("to", "message"), [
    ("3", "did not pass its gates (validation_status=failed)"),
    ("2", "already the champion"),
    ("9", "has no version 9"),
])
def test_rollback_refuses_without_touching_the_aliases(registry, tmp_path, to, message):
    _released(registry, tmp_path)
    with pytest.raises(RegistryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.rollback("x", to=to)
    assert _aliases(registry) == {"champion": "2", "previous": "1", "challenger": "3"}


def test_rollback_needs_a_champion_and_a_previous(registry, tmp_path):
    with pytest.raises(RegistryError, match="no champion"):
        registry.rollback("x")
    register_three(registry, tmp_path)
    registry.promote("x", "1", PASS)
    with pytest.raises(RegistryError, match="no 'previous' version"):
        registry.rollback("x")
    assert registry.gate_results(registry.get("x", "1"))[0]["passed"] is True
