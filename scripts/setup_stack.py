#!/usr/bin/env python
"""Idempotently set up the local ZenML + MLflow stack for llmship.

What it does (each action prints one line; re-running is a no-op):

1. points ZenML at ``<LLMSHIP_HOME>/zenml`` (``ZENML_CONFIG_PATH``) and
   initialises the repository at the checkout root (``.zen/``, like ``zenml init``);
2. registers the MLflow experiment tracker ``llmship_mlflow_tracker``
   (tracking URI = ``llmship.paths.mlflow_tracking_uri()``) and the MLflow model
   registry ``llmship_mlflow_registry``;
3. registers the stack ``llmship`` (default orchestrator + default artifact
   store + the two above) and makes it the active stack;
4. pre-creates the MLflow experiments the pipelines log to, with an explicit
   artifact location under ``<LLMSHIP_HOME>/mlflow/artifacts`` (MLflow with a
   SQLite store would otherwise put artifacts under ``./mlruns`` of the cwd).

Usage: ``python scripts/setup_stack.py`` (``--quiet`` prints nothing on success).
Exits 1 with a one-line ``setup_stack: error: ...`` message on failure.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from llmship import paths

TRACKER_NAME = "llmship_mlflow_tracker"
REGISTRY_NAME = "llmship_mlflow_registry"
STACK_NAME = "llmship"
# ZenML's MLflow tracker uses the pipeline name as experiment name by default.
EXPERIMENTS = ("deploy_llm", "kg_update", "embedding_refresh")

QUIET = "--quiet" in sys.argv[1:] or "-q" in sys.argv[1:]


def say(msg: str) -> None:
    if not QUIET:
        print(f"setup_stack: {msg}", flush=True)


def configure_env() -> None:
    """Environment that must be in place before ``import zenml``."""
    os.environ["ZENML_CONFIG_PATH"] = str(paths.zenml_config_path())
    os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")
    os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "ERROR")
    os.environ.setdefault("ZENML_ENABLE_RICH_TRACEBACK", "false")
    os.environ.setdefault("ZENML_AUTO_OPEN_DASHBOARD", "false")
    os.environ.setdefault("ZENML_ENABLE_REPO_INIT_WARNINGS", "false")
    # An inherited ZENML_ACTIVE_STACK_ID would override what we activate.
    os.environ.pop("ZENML_ACTIVE_STACK_ID", None)
    os.environ.setdefault("ZENML_LOGGING_COLORS_DISABLED", "true")
    # MLflow: keep its import-time chatter down.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow's client-side SQLite store falls back to "<cwd>/mlruns" as the
    # default artifact root (used for the "Default" experiment created with a
    # fresh DB, and for any experiment created without a location). This
    # private-but-honoured variable (mlflow.tracking._tracking_service.utils)
    # redirects that fallback to our artifact root.
    os.environ.setdefault("_MLFLOW_SERVER_ARTIFACT_ROOT", str(paths.mlflow_artifact_root()))


def ensure_repo() -> None:
    from zenml.client import Client

    if Client.is_repository_directory(REPO_ROOT):
        say(f"zenml repo already initialised at {REPO_ROOT / '.zen'}")
    else:
        Client.initialize(root=REPO_ROOT)
        say(f"initialised zenml repo at {REPO_ROOT / '.zen'}")
    # Make the global client use this repo regardless of the cwd.
    Client().activate_root(REPO_ROOT)


def ensure_analytics_off() -> None:
    """Persist the opt-out (env ZENML_ANALYTICS_OPT_IN only covers this process)."""
    import yaml
    from zenml.config.global_config import GlobalConfiguration

    gc = GlobalConfiguration()
    cfg_file = Path(gc.config_directory) / "config.yaml"
    on_disk = yaml.safe_load(cfg_file.read_text()) if cfg_file.exists() else {}
    if (on_disk or {}).get("analytics_opt_in", True) is False:
        say("zenml analytics already disabled")
    else:
        gc.analytics_opt_in = False  # writes config.yaml
        say(f"disabled zenml analytics in {cfg_file}")


def ensure_component(client, name: str, component_type, flavor: str, config: dict) -> None:
    try:
        existing = client.get_stack_component(
            component_type=component_type, name_id_or_prefix=name, allow_name_prefix_match=False
        )
    except KeyError:
        existing = None
    if existing is None:
        client.create_stack_component(
            name=name, flavor=flavor, component_type=component_type, configuration=config
        )
        say(f"registered {component_type.value} '{name}' (flavor {flavor})")
        return
    if existing.flavor_name != flavor:
        raise RuntimeError(
            f"{component_type.value} '{name}' exists with flavor "
            f"'{existing.flavor_name}', expected '{flavor}'; remove it first"
        )
    drift = {k: v for k, v in config.items() if existing.configuration.get(k) != v}
    if drift:
        client.update_stack_component(
            name_id_or_prefix=existing.id, component_type=component_type, configuration=drift
        )
        say(f"updated {component_type.value} '{name}': {', '.join(sorted(drift))}")
    else:
        say(f"{component_type.value} '{name}' already registered")


def ensure_stack(client) -> None:
    from zenml.enums import StackComponentType as T

    wanted = {
        T.ORCHESTRATOR: "default",
        T.ARTIFACT_STORE: "default",
        T.EXPERIMENT_TRACKER: TRACKER_NAME,
        T.MODEL_REGISTRY: REGISTRY_NAME,
    }
    try:
        stack = client.get_stack(STACK_NAME, allow_name_prefix_match=False)
    except KeyError:
        stack = None
    if stack is None:
        client.create_stack(name=STACK_NAME, components=wanted)
        say(f"registered stack '{STACK_NAME}'")
    else:
        have = {t: (stack.components.get(t) or [None])[0] for t in wanted}
        wrong = {t: n for t, n in wanted.items() if have[t] is None or have[t].name != n}
        if wrong:
            client.update_stack(name_id_or_prefix=stack.id, component_updates={t: [n] for t, n in wrong.items()})
            say(f"updated stack '{STACK_NAME}': {', '.join(sorted(t.value for t in wrong))}")
        else:
            say(f"stack '{STACK_NAME}' already registered")

    # With a .zen repo the active stack lives in .zen/config.yaml (shared by
    # every LLMSHIP_HOME, reset to 'default' by ZenML when the id is unknown to
    # the current store); also set it in the home's global config so processes
    # started outside the repo (no .zen found) get it too.
    from zenml.config.global_config import GlobalConfiguration

    stack = client.get_stack(STACK_NAME, allow_name_prefix_match=False)
    changed = []
    if client.active_stack_model.id != stack.id:
        client.activate_stack(stack.id)
        changed.append("repo")
    gc = GlobalConfiguration()
    if gc.get_active_stack_id() != stack.id:
        gc.set_active_stack(stack)
        changed.append("global")
    if changed:
        say(f"activated stack '{STACK_NAME}' ({' + '.join(changed)} config)")
    else:
        say(f"stack '{STACK_NAME}' already active")


def ensure_experiments(tracking_uri: str, artifact_root: Path) -> None:
    from mlflow.entities import LifecycleStage
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for name in EXPERIMENTS:
        location = (artifact_root / name).as_uri()
        exp = client.get_experiment_by_name(name)
        if exp is None:
            client.create_experiment(name, artifact_location=location)
            say(f"created mlflow experiment '{name}' -> {location}")
            continue
        if exp.lifecycle_stage == LifecycleStage.DELETED:
            client.restore_experiment(exp.experiment_id)
            say(f"restored deleted mlflow experiment '{name}'")
        if exp.artifact_location.rstrip("/") != location:
            # Artifact location is immutable in MLflow; report, don't fail.
            say(f"warning: mlflow experiment '{name}' stores artifacts at {exp.artifact_location}")
        else:
            say(f"mlflow experiment '{name}' already exists")


def check_tracking_uri(tracking_uri: str) -> bool:
    """Mirror ZenML's tracker check up front; return True for DB-backed stores."""
    from mlflow.store.db.db_types import DATABASE_ENGINES

    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme in DATABASE_ENGINES:
        return True
    if scheme in ("http", "https", "databricks"):
        return False
    raise ValueError(
        f"unsupported MLflow tracking uri {tracking_uri!r} (want sqlite:///..., "
        "another SQL database, http(s)://... or databricks)"
    )


def verify(expected_uri: str) -> None:
    """Instantiate the active stack the way a pipeline run will, and check it."""
    from zenml.client import Client

    stack = Client().active_stack  # builds components: runs their __init__ checks
    stack.validate()
    tracker = stack.experiment_tracker
    got = tracker.get_tracking_uri() if tracker is not None else None
    if stack.name != STACK_NAME or got != expected_uri:
        raise RuntimeError(
            f"active stack is {stack.name!r} with tracking uri {got!r}; "
            f"expected {STACK_NAME!r} with {expected_uri!r}"
        )
    say(f"verified active stack '{STACK_NAME}' (mlflow {got})")


def main() -> int:
    try:
        configure_env()
        tracking_uri = paths.mlflow_tracking_uri()
        is_db_store = check_tracking_uri(tracking_uri)

        ensure_repo()
        ensure_analytics_off()

        from zenml.client import Client
        from zenml.enums import StackComponentType as T

        client = Client()
        ensure_component(client, TRACKER_NAME, T.EXPERIMENT_TRACKER, "mlflow", {"tracking_uri": tracking_uri})
        ensure_component(client, REGISTRY_NAME, T.MODEL_REGISTRY, "mlflow", {})
        ensure_stack(client)
        if is_db_store:
            ensure_experiments(tracking_uri, paths.mlflow_artifact_root())
        else:
            say(f"remote mlflow tracking uri {tracking_uri}: experiments left to the server")
        verify(tracking_uri)
        return 0
    except Exception as exc:  # noqa: BLE001 - one-line error, no traceback
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"setup_stack: error: {type(exc).__name__}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
