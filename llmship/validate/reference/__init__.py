"""Engines: one generation loop, two KV-cache backends (PyTorch, ONNX Runtime)."""

from llmship.engine.base import Completion, Engine, SamplingParams, StepOutput
from llmship.engine.loader import load_engine

__all__ = ["Completion", "Engine", "SamplingParams", "StepOutput", "load_engine"]
