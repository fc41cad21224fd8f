"""Register, promote and resolve model versions in MLflow.

Aliases carry the release state, the way MLflow 2.9+ recommends instead of stages:

- ``champion`` — the version served; only a version that passed every gate.
- ``previous`` — the champion it replaced (the rollback target).
- ``challenger`` — the latest version that failed a gate (kept for inspection).

Consistency: everything about a version (artifacts, metrics, reports) is
logged to its run *before* the version is created, and the version is created
with its tags in one call (``validation_status=pending``). Promotion then only
moves aliases and flips that tag, so an interrupted pipeline leaves either no
version or a pending one that nothing serves — never a champion without its
evidence.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import BaseModel

from llmship import paths
from llmship.errors import RegistryError
from llmship.validate.gates import GateReport

log = logging.getLogger(__name__)
CHAMPION, PREVIOUS, CHALLENGER = "champion", "previous", "challenger"
DEFAULT_EXPERIMENT = "llmship"


class ModelVersionRef(BaseModel):
    name: str
    version: str
    run_id: str | None
    source: str
    aliases: list[str] = []
    tags: dict[str, str] = {}

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Rollback(BaseModel):
    """What ``ModelRegistry.rollback`` moved: ``champion`` from one version to another."""

    name: str
    from_version: str
    to_version: str
    previous_before: str | None  # the ``previous`` alias before the move (restored by ``undo_rollback``)


class Promotion(BaseModel):
    name: str
    version: str
    status: str  # "champion" | "challenger"
    previous_champion: str | None
    reason: str


def split_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/<name>@<alias>`` → (name, alias, None); ``models:/<name>/<version>`` → (name, None, version)."""
    if not uri.startswith("models:/"):
        raise RegistryError(f"{uri!r} is not a models:/ URI")
    body = uri[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, alias, None
    name, _, version = body.partition("/")
    return name, None, version


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


class ModelRegistry:
    def __init__(self, tracking_uri: str | None = None) -> None:
        import mlflow
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri or paths.mlflow_tracking_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        except Exception as err:  # noqa: BLE001 - any failure to open the store is one RegistryError line
            raise RegistryError(f"cannot open the MLflow store at {self.tracking_uri}: {err}") from None

    # ------------------------------------------------------------------ runs
    def ensure_experiment(self, name: str = DEFAULT_EXPERIMENT) -> str:
        """Create the experiment with an explicit artifact root (SQLite stores default to ./mlruns)."""
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if self.tracking_uri.startswith("sqlite:"):
            location = (paths.mlflow_artifact_root() / name).as_uri()
        return self.client.create_experiment(name, artifact_location=location)

    def start_run(self, experiment: str = DEFAULT_EXPERIMENT, run_name: str | None = None) -> str:
        run = self.client.create_run(self.ensure_experiment(experiment), run_name=run_name)
        return run.info.run_id

    # -------------------------------------------------------------- register
    def register(self, name: str, model_dir: str | Path, *, run_id: str | None = None,
                 metrics: dict[str, float] | None = None, params: dict[str, Any] | None = None,
                 tags: dict[str, str] | None = None, files: list[tuple[str, Path]] | None = None,
                 description: str = "") -> ModelVersionRef:
        """Log the evidence to a run, then create the model version pointing at the logged model."""
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        own_run = run_id is None
        run_id = run_id or self.start_run(run_name=f"register-{name}")
        try:
            batch_metrics = [Metric(k, float(v), 0, 0) for k, v in (metrics or {}).items() if v is not None]
            batch_params = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
            batch_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
            for i in range(0, max(len(batch_metrics), len(batch_params), len(batch_tags)), 100):
                self.client.log_batch(run_id, metrics=batch_metrics[i:i + 100], params=batch_params[i:i + 100],
                                      tags=batch_tags[i:i + 100])
            for folder, file in files or []:  # (artifact folder, local file): the file name is kept
                self.client.log_artifact(run_id, str(file), artifact_path=folder or None)
            source = self._log_model_dir(run_id, Path(model_dir))
            try:
                self.client.create_registered_model(name, description="Released with llmship")
            except MlflowException as err:
                if "RESOURCE_ALREADY_EXISTS" not in str(err.error_code):
                    raise
            version_tags = {**(tags or {}), "validation_status": "pending"}
            mv = self.client.create_model_version(name, source=source, run_id=run_id, tags=version_tags,
                                                  description=description)
            if own_run:
                self.client.set_terminated(run_id)
        except MlflowException as err:
            if own_run:
                self.client.set_terminated(run_id, status="FAILED")
            raise RegistryError(f"registering {name} failed: {err.message}") from None
        return self.get(name, mv.version)

    def _log_model_dir(self, run_id: str, model_dir: Path) -> str:
        """Put the model folder under the run's ``model/`` artifact path and return its URI.

        On a local artifact store, files the build cache owns (written once,
        never modified) are hard-linked rather than copied: a release of a
        1.6 GB folder then costs no disk or time. Symlinks point into folders
        the user owns (``path:`` sources) and may be edited in place later, so
        their targets are copied: a registered version must never change.
        """
        artifact_uri = self.client.get_run(run_id).info.artifact_uri
        local = _local_path(artifact_uri)
        if local is not None:
            dest = local / "model"
            for file in sorted(model_dir.rglob("*")):
                if file.is_dir() or any(part.startswith(".") for part in file.relative_to(model_dir).parts):
                    continue  # skip folders and leftovers of interrupted builds (.name.tmp-*)
                target = dest / file.relative_to(model_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                if file.is_symlink():
                    shutil.copy2(file.resolve(), target)
                    continue
                try:
                    os.link(file, target)
                except OSError:
                    shutil.copy2(file, target)
        else:
            self.client.log_artifacts(run_id, str(model_dir), artifact_path="model")
        return f"{artifact_uri.rstrip('/')}/model"

    # ------------------------------------------------------------- promotion
    def promote(self, name: str, version: str, report: GateReport) -> Promotion:
        """Champion if every gate passed (old champion becomes ``previous``); else challenger."""
        current = self.by_alias(name, CHAMPION)
        self.client.set_model_version_tag(name, version, "gate_report", json.dumps(
            [r.model_dump() for r in report.results])[:5000])
        if report.passed:
            if current and current.version != version:
                self.client.set_registered_model_alias(name, PREVIOUS, current.version)
            self.client.set_registered_model_alias(name, CHAMPION, version)
            self.client.set_model_version_tag(name, version, "validation_status", "passed")
            return Promotion(name=name, version=version, status=CHAMPION,
                             previous_champion=current.version if current else None, reason=report.reason())
        self.client.set_model_version_tag(name, version, "validation_status", "failed")
        self.client.set_model_version_tag(name, version, "gate_failures", report.reason()[:5000])
        self.client.set_registered_model_alias(name, CHALLENGER, version)
        return Promotion(name=name, version=version, status=CHALLENGER,
                         previous_champion=current.version if current else None, reason=report.reason())

    def rollback(self, name: str, to: str | None = None) -> Rollback:
        """Move ``champion`` back to ``to`` (default: the ``previous`` version); the replaced champion becomes
        ``previous``, as in a promotion, so a second rollback undoes the first (like ``kubectl rollout undo``).

        Only a version that passed its gates may become champion again: a challenger never serves.
        """
        from mlflow.exceptions import MlflowException

        current = self.by_alias(name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name!r} has no champion to roll back; run the deploy_llm pipeline first")
        previous = self.by_alias(name, PREVIOUS)
        if to is None:
            if previous is None:
                raise RegistryError(f"{name!r} has no 'previous' version to roll back to; name one with --to VERSION")
            target = previous
        else:
            try:
                target = self.get(name, str(to))
            except MlflowException:
                raise RegistryError(f"{name!r} has no version {to}") from None
        if target.version == current.version:
            raise RegistryError(f"version {target.version} of {name!r} is already the champion")
        status = target.tags.get("validation_status")
        if status != "passed":
            raise RegistryError(f"version {target.version} of {name!r} did not pass its gates "
                                f"(validation_status={status or 'unknown'}); only a validated version can be champion")
        # previous first: interrupted between the two calls, champion still names a validated version.
        self.client.set_registered_model_alias(name, PREVIOUS, current.version)
        self.client.set_registered_model_alias(name, CHAMPION, target.version)
        when = datetime.now(UTC).isoformat(timespec="seconds")
        self.client.set_model_version_tag(name, current.version, "rolled_back_at", when)
        self.client.set_model_version_tag(name, target.version, "restored_at", when)
        self.client.set_model_version_tag(name, target.version, "restored_from", current.version)
        log.info("rolled %s back from version %s to %s", name, current.version, target.version)
        return Rollback(name=name, from_version=current.version, to_version=target.version,
                        previous_before=previous.version if previous else None)

    def undo_rollback(self, moved: Rollback) -> None:
        """Put the aliases back where ``rollback`` found them (the restart of the rolled-back version failed)."""
        self.client.set_registered_model_alias(moved.name, CHAMPION, moved.from_version)
        if moved.previous_before is not None:
            self.client.set_registered_model_alias(moved.name, PREVIOUS, moved.previous_before)
        else:
            self.client.delete_registered_model_alias(moved.name, PREVIOUS)
        self.client.delete_model_version_tag(moved.name, moved.from_version, "rolled_back_at")

    def gate_results(self, ref: ModelVersionRef) -> list[dict[str, Any]]:
        """The gate verdicts recorded at promotion (``gate_report`` tag): name, value, threshold, op, passed."""
        try:
            return list(json.loads(ref.tags.get("gate_report") or "[]"))
        except ValueError:
            return []

    # ---------------------------------------------------------------- lookup
    def get(self, name: str, version: str) -> ModelVersionRef:
        mv = self.client.get_model_version(name, str(version))
        return ModelVersionRef(name=name, version=str(mv.version), run_id=mv.run_id, source=mv.source,
                               aliases=list(mv.aliases or []), tags=dict(mv.tags or {}))

    def by_alias(self, name: str, alias: str) -> ModelVersionRef | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(name, alias)
        except MlflowException:
            return None
        return self.get(name, mv.version)

    def versions(self, name: str) -> list[ModelVersionRef]:
        found = self.client.search_model_versions(f"name = '{_quote(name)}'")
        return sorted((self.get(name, mv.version) for mv in found), key=lambda r: int(r.version))

    def metrics(self, ref: ModelVersionRef) -> dict[str, float]:
        if not ref.run_id:
            return {}
        return dict(self.client.get_run(ref.run_id).data.metrics)

    def resolve(self, uri: str) -> tuple[ModelVersionRef, Path]:
        """``models:/<name>@<alias>`` or ``models:/<name>/<version>`` → (version, local model folder)."""
        name, alias, version = split_model_uri(uri)
        if alias is not None:
            ref = self.by_alias(name, alias)
            if ref is None:
                raise RegistryError(f"no version of {name!r} has alias {alias!r}; run the deploy_llm pipeline first")
        else:
            from mlflow.exceptions import MlflowException

            assert version is not None  # split_model_uri gives an alias or a version
            try:
                ref = self.get(name, version)
            except MlflowException:
                raise RegistryError(f"{uri} does not exist in the registry at {self.tracking_uri}") from None
        local = _local_path(ref.source)
        if local is None or not local.exists():
            import mlflow

            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.source))
        return ref, local


def _quote(value: str) -> str:
    """Escape a value for MLflow's filter grammar (names come from config, not users)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def resolve_served(model_uri: str, registry: ModelRegistry | None = None) -> tuple[Path, str, str]:
    """``models:/<name>@alias`` → (the model's Hugging Face folder, registered name, ``name/version``)."""
    registry = registry or ModelRegistry()
    ref, folder = registry.resolve(model_uri)
    hf = Path(folder) / "hf"
    return (hf if hf.exists() else Path(folder)), ref.name, f"{ref.name}/{ref.version}"
