"""load_engine: backends, context caps and the CUDA request on a machine without CUDA."""

import onnxruntime as ort
import pytest

from llmship.errors import EngineUnavailable
from llmship.validate.reference import load_engine


def test_context_length_is_capped_by_max_model_len(tiny_built):
    engine = load_engine(tiny_built.folder, "pytorch", max_model_len=64)
    assert engine.context_length == 64
    assert load_engine(tiny_built.folder, "pytorch").context_length == tiny_built.max_position_embeddings


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a CUDA build is installed")
def test_onnx_on_cuda_without_the_provider_is_refused_not_silently_cpu(tiny_built, tiny_onnx):
    with pytest.raises(EngineUnavailable, match="CUDAExecutionProvider"):
        load_engine(tiny_built.folder, "onnx", onnx_dir=tiny_onnx.path, device="cuda")
