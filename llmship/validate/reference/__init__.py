"""The validation reference: a greedy/sampling decode loop over two KV-cache backends (PyTorch, ONNX Runtime).

It serves nothing (vLLM serves, ``llmship.engine``): the ONNX parity gate compares its two backends, the
evaluation scores perplexity with it, and ``engine_parity`` checks vLLM against its PyTorch greedy output."""

from pathlib import Path

from llmship.validate.reference.base import Completion, Engine, SamplingParams, StepOutput
from llmship.validate.reference.loader import load_engine

__all__ = ["Completion", "Engine", "SamplingParams", "StepOutput", "load_engine", "sources"]


def sources() -> list[Path]:
    """The reference's own code: a measurement made with it and kept for reuse (``llmship.validate.reuse``) is
    measured again when this code changes."""
    return sorted(Path(__file__).parent.glob("*.py"))
