"""Where llmship keeps its state.

Everything stateful (ZenML store, MLflow database and artifacts, model caches,
server pid files, logs) lives under one folder, ``LLMSHIP_HOME``, so that a
checkout is self-contained and ``rm -rf .llmship`` is a full reset.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The state folder: ``$LLMSHIP_HOME`` or ``.llmship/`` in the checkout."""
    raw = os.environ.get("LLMSHIP_HOME")
    path = Path(raw).expanduser() if raw else REPO_ROOT / ".llmship"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def sub(*parts: str) -> Path:
    """A folder under the state home, created on first use."""
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def mlflow_tracking_uri() -> str:
    """The MLflow tracking/registry store: SQLite under the home unless overridden.

    MLflow 3 refuses a plain ``./mlruns`` file store, so the default is a SQLite
    database; ``MLFLOW_TRACKING_URI`` wins when a user points at a real server.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{sub('mlflow') / 'mlflow.db'}"


def mlflow_artifact_root() -> Path:
    """Local artifact root used when llmship creates experiments itself."""
    return sub("mlflow", "artifacts")


def zenml_config_path() -> Path:
    """ZenML's global config + local SQLite store, kept inside the home."""
    return sub("zenml")


def model_cache() -> Path:
    """Converted Hugging Face folders and ONNX exports, keyed by source identity."""
    return sub("models")


def ensure_free_space(folder: Path, need_bytes: int, what: str) -> None:
    """Fail before writing, with one line, when a conversion or export cannot fit on the disk.

    A full disk half-way through ``save_pretrained`` or an ONNX save leaves a
    truncated file and a stack trace; checking first turns that into a clear
    error while nothing has been written yet.
    """
    from llmship.errors import LlmshipError

    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes:
        raise LlmshipError(
            f"not enough disk space for {what}: {free / 1e9:.2f} GB free under {probe}, "
            f"about {need_bytes / 1e9:.2f} GB needed; free some space or set LLMSHIP_HOME elsewhere",
            code="disk_full",
        )
