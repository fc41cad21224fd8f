"""What the steps need to know about the active ZenML stack."""

from __future__ import annotations

import contextlib

from llmship import paths


def tracker_name() -> str | None:
    """The active stack's experiment tracker (the MLflow one ``make stack`` registers), if any."""
    try:
        from zenml.client import Client

        tracker = Client().active_stack.experiment_tracker
    except Exception:  # noqa: BLE001 - no usable ZenML stack: the step runs without a tracker
        return None
    return tracker.name if tracker is not None else None


def tracking_uri() -> str:
    """The MLflow store the stack's tracker writes to, so registry and runs are one store."""
    with contextlib.suppress(Exception):  # no usable ZenML stack: the default store
        from zenml.client import Client

        tracker = Client().active_stack.experiment_tracker
        if tracker is not None and hasattr(tracker, "get_tracking_uri"):
            return tracker.get_tracking_uri()
    return paths.mlflow_tracking_uri()
