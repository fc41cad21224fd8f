"""Build an ``Engine`` from a model folder (a registry download or a build output)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from llmship.errors import EngineUnavailable
from llmship.validate.reference.base import Engine, KVBackend

Backend = Literal["pytorch", "onnx"]


def load_engine(hf_dir: str | Path, backend: Backend = "pytorch", *, onnx_dir: str | Path | None = None,
                threads: int = 0, dtype: str = "float32", max_model_len: int | None = None,
                model_id: str | None = None, device: str = "cpu") -> Engine:
    """Load the tokenizer and the requested backend; ONNX needs ``onnx_dir``.

    ``device="cuda"`` runs PyTorch on the GPU and asks ONNX Runtime for its CUDA
    provider, failing (rather than silently using the CPU) when it is missing.
    """
    import torch
    from transformers import AutoTokenizer

    hf_dir = Path(hf_dir)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    if backend == "onnx":
        from llmship.validate.reference.onnx_backend import OnnxBackend

        if onnx_dir is None:
            raise ValueError("the onnx backend needs onnx_dir")
        providers = ["CUDAExecutionProvider"] if device == "cuda" else None
        onnx = OnnxBackend(onnx_dir, threads=threads, providers=providers)
        if device == "cuda" and "CUDAExecutionProvider" not in onnx.providers:
            raise EngineUnavailable("ONNX Runtime has no CUDAExecutionProvider here (install onnxruntime-gpu)")
        kv: KVBackend = onnx
    else:
        from llmship.validate.reference.torch_backend import TorchBackend

        kv = TorchBackend.from_folder(hf_dir, dtype=dtype, device=device)
    return Engine(kv, tokenizer, eos_token_ids=eos_ids(hf_dir, tokenizer), context_length=context_length(hf_dir, max_model_len),
                  model_id=model_id or hf_dir.parent.name)


def eos_ids(hf_dir: Path, tokenizer) -> list[int]:
    """Stop tokens: generation_config's eos ids (which the build extends), else the tokenizer's."""
    gen_path = hf_dir / "generation_config.json"
    eos = json.loads(gen_path.read_text()).get("eos_token_id") if gen_path.exists() else None
    if eos is None:
        eos = tokenizer.eos_token_id
    return [eos] if isinstance(eos, int) else list(eos)


def context_length(hf_dir: Path, cap: int | None) -> int:
    config = json.loads((hf_dir / "config.json").read_text())
    native = int(config.get("text_config", config).get("max_position_embeddings") or 2048)
    return min(native, cap) if cap else native
