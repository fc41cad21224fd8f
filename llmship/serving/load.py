"""Turn ``models:/<name>@champion`` into a ready ``Runtime``.

The backend follows the evidence recorded at registration: ONNX Runtime when
the version's ONNX export passed parity (tag ``serve_backend=onnx``),
PyTorch otherwise. ``LLMSHIP_SERVE_BACKEND`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel

from llmship.engine.loader import load_engine
from llmship.errors import ServeError
from llmship.openai.runtime import Runtime, ServedModel
from llmship.registry import ModelRegistry


class ServeSettings(BaseModel):
    model_uri: str
    backend: str = "auto"  # auto | onnx | pytorch
    threads: int = 0
    max_model_len: int = 2048
    max_waiting: int = 64
    max_batch: int = 16
    max_prefill_tokens: int = 4096
    torch_dtype: str = "bfloat16"
    device: str = "cpu"  # cpu | cuda (PyTorch on the GPU; ONNX Runtime's CUDA provider, which onnxruntime-gpu has)
    shared_metrics: bool = False  # True inside a Bento: series go to BentoML's /metrics

    @classmethod
    def from_env(cls) -> ServeSettings:
        uri = os.environ.get("LLMSHIP_MODEL_URI")
        if not uri:
            raise ServeError("LLMSHIP_MODEL_URI is not set (e.g. models:/gemma3-270m@champion)")
        return cls(
            model_uri=uri,
            backend=os.environ.get("LLMSHIP_SERVE_BACKEND", "auto"),
            threads=int(os.environ.get("LLMSHIP_THREADS", "0")),
            max_model_len=int(os.environ.get("LLMSHIP_MAX_MODEL_LEN", "2048")),
            max_waiting=int(os.environ.get("LLMSHIP_MAX_WAITING", "64")),
            max_batch=int(os.environ.get("LLMSHIP_MAX_BATCH", "16")),
            max_prefill_tokens=int(os.environ.get("LLMSHIP_MAX_PREFILL_TOKENS", "4096")),
            torch_dtype=os.environ.get("LLMSHIP_TORCH_DTYPE", "bfloat16"),
            device=os.environ.get("LLMSHIP_DEVICE", "cpu"),
        )


def load_runtime(settings: ServeSettings, registry: ModelRegistry | None = None) -> Runtime:
    if settings.device not in ("cpu", "cuda"):
        raise ServeError(f"LLMSHIP_DEVICE must be cpu or cuda, not {settings.device!r}")
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ServeError("LLMSHIP_DEVICE=cuda but torch sees no CUDA GPU here (a CPU build of torch, or no "
                             "driver); serve with LLMSHIP_DEVICE=cpu")
    registry = registry or ModelRegistry()
    ref, folder = registry.resolve(settings.model_uri)
    backend = settings.backend
    if backend == "auto":
        backend = ref.tags.get("serve_backend", "pytorch")
    onnx_dir = Path(folder) / "onnx"
    if backend == "onnx" and not onnx_dir.exists():
        raise ServeError(f"{ref.uri} has no ONNX export; serve it with LLMSHIP_SERVE_BACKEND=pytorch")
    engine = load_engine(Path(folder) / "hf", "onnx" if backend == "onnx" else "pytorch",
                         onnx_dir=onnx_dir if backend == "onnx" else None, threads=settings.threads,
                         dtype=settings.torch_dtype, max_model_len=settings.max_model_len, model_id=ref.name,
                         device=settings.device)
    served = ServedModel(engine=engine, model_id=ref.name, version=f"{ref.name}/{ref.version}", backend=engine.name)
    return Runtime(served, max_waiting=settings.max_waiting, max_batch=settings.max_batch,
                   max_prefill_tokens=settings.max_prefill_tokens, shared_metrics=settings.shared_metrics)
