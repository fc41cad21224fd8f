"""``llmship.serving.load``: the device setting the GPU overlay (deploy/k8s/overlays/gpu) relies on."""

from __future__ import annotations

import pytest
import torch

from llmship.errors import ServeError
from llmship.serving.load import ServeSettings, load_runtime


def test_device_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LLMSHIP_MODEL_URI", "models:/x@champion")
    assert ServeSettings.from_env().device == "cpu"
    monkeypatch.setenv("LLMSHIP_DEVICE", "cuda")
    assert ServeSettings.from_env().device == "cuda"


def test_an_unknown_device_is_refused_before_anything_loads():
    with pytest.raises(ServeError, match="LLMSHIP_DEVICE must be cpu or cuda, not 'tpu'"):
        load_runtime(ServeSettings(model_uri="models:/x@champion", device="tpu"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this checks the refusal on a machine without a GPU")
def test_cuda_without_a_gpu_is_one_clear_error_not_a_silent_cpu_fallback():
    with pytest.raises(ServeError, match="LLMSHIP_DEVICE=cuda but torch sees no CUDA GPU"):
        load_runtime(ServeSettings(model_uri="models:/x@champion", device="cuda"))


def test_cpu_serves_the_registered_tiny_model(home, tiny_built):
    from llmship.registry import ModelRegistry
    from llmship.validate.gates import GateThresholds, evaluate_gates

    registry = ModelRegistry()
    ref = registry.register("tiny", tiny_built.folder.parent)
    registry.promote("tiny", ref.version, evaluate_gates({}, GateThresholds(), skip=set()))
    runtime = load_runtime(ServeSettings(model_uri="models:/tiny/1", backend="pytorch", torch_dtype="float32"),
                           registry)
    try:
        assert runtime.served.version == "tiny/1"
        assert str(runtime.served.engine.backend.device) == "cpu"
    finally:
        runtime.close()
