"""Build the chat Bento with the ``bentoml`` CLI (the core never imports BentoML)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from llmship import paths
from llmship.config import ServeConfig
from llmship.errors import ServeError
from llmship.serving.process import bentoml_executable


def bentoml_env() -> dict[str, str]:
    """Keep BentoML's store under LLMSHIP_HOME unless the user chose one."""
    env = dict(os.environ)
    env.setdefault("BENTOML_HOME", str(paths.sub("bentoml")))
    env.setdefault("BENTOML_DO_NOT_TRACK", "true")
    return env


def chat_service_env(config: ServeConfig, tracking_uri: str) -> dict[str, str]:
    """The environment ``bentoml serve`` of the chat Bento gets: BentoML's, the registry it loads the champion
    from, and the serve settings (``deploy``, ``rollback``)."""
    return {**bentoml_env(), "MLFLOW_TRACKING_URI": tracking_uri, **config.chat_env()}


def build_bento(bentofile: str | Path, context: str | Path = paths.REPO_ROOT, version: str | None = None) -> str:
    """Run ``bentoml build`` and return the Bento tag (``name:version``)."""
    cmd = [bentoml_executable(), "build", "-f", str(bentofile), str(context), "--output", "tag"]
    if version:
        cmd += ["--version", version]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=bentoml_env(), cwd=str(context))
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise ServeError(f"bentoml build failed: {last}")
    match = re.search(r"__tag__:(\S+)", proc.stdout) or re.search(r"(\S+:\S+)\s*$", proc.stdout.strip())
    if not match:
        raise ServeError(f"bentoml build printed no tag: {proc.stdout.strip()[-200:]}")
    return match.group(1)


def bento_exists(tag: str) -> bool:
    """Whether the local Bento store still holds ``tag`` (``bentoml get``; a deleted Bento must be rebuilt)."""
    proc = subprocess.run([bentoml_executable(), "get", tag, "-o", "json"], capture_output=True, text=True,
                          env=bentoml_env(), check=False)
    return proc.returncode == 0
