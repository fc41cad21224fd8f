"""Reusing a deterministic measurement when nothing it depends on has changed.

ONNX parity (fp32, greedy), held-out perplexity (fp32, teacher-forced) and the engine check's fp32 reference
continuations give the same numbers for the same model files, the same inputs, the same libraries and the same
measuring code. A re-deploy of an unchanged model reads the report kept beside the model instead of spending ~45 s,
~20 s and ~11 s measuring it again (the report says ``reused``); change any input and it is measured afresh. What is
not deterministic — the serving engine's side of its check, the benchmark — always runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

LIBRARIES = ("torch", "transformers", "onnxruntime")
R = TypeVar("R", bound=BaseModel)


def content_key(folders: Iterable[Path], files: Iterable[Path], *, code: Iterable[Path], extra: str) -> str:
    """A digest of what a measurement depends on: each folder's files by name, size and modification time (the
    build cache writes them once; a rewrite changes the time), other files and the measuring code by content, the
    libraries' versions and ``extra`` (the settings)."""
    digest = hashlib.sha256(extra.encode())
    for folder in folders:
        for file in sorted(Path(folder).rglob("*")):
            if file.is_file() and not file.name.startswith((".", "reused-")):
                stat = file.stat()
                digest.update(f"{file.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for file in (*files, *code):
        digest.update(Path(file).read_bytes())
    for dist in LIBRARIES:
        with contextlib.suppress(md.PackageNotFoundError):
            digest.update(f"{dist}=={md.version(dist)}".encode())
    return digest.hexdigest()[:20]


def reuse_or_measure(kept: Path, model: type[R], measure: Callable[[], R]) -> R:
    """The report kept at ``kept`` (with ``reused=True``), else ``measure()``, kept there for the next time."""
    if kept.is_file():
        with contextlib.suppress(ValueError):
            return model.model_validate_json(kept.read_text()).model_copy(update={"reused": True})
    report = measure()
    with contextlib.suppress(OSError):
        tmp = kept.with_name(kept.name + ".tmp")
        tmp.write_text(report.model_dump_json())
        tmp.replace(kept)
    return report
