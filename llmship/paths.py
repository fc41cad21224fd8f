"""Where llmship keeps its state.

Everything stateful (ZenML store, MLflow database and artifacts, model caches,
server pid files, logs) lives under one folder, ``LLMSHIP_HOME``, so that a
checkout is self-contained and ``rm -rf .llmship`` is a full reset.
"""

from __future__ import annotations

import os
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
