"""Whether two model folders hold the same model: the build cache's folder and the registry's copy of it."""

from __future__ import annotations

import hashlib
from pathlib import Path


def folder_digest(folder: str | Path) -> str:
    """A sha256 over every file's path (relative to ``folder``) and content, hidden files left out.

    Why content and not sizes and times: the registry's copy of a build (``log_artifacts``) has new modification
    times, and the question asked of it — may the engine a deploy checked on the built folder serve this registered
    version (``llmship.serving.staging``) — is only safe to answer yes for identical bytes. About a second for
    gemma-3-270m's 540 MB here."""
    root = Path(folder)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = file.relative_to(root).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        digest.update(f"{relative}\0{file.stat().st_size}\0".encode())
        with file.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()
