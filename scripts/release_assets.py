#!/usr/bin/env python
"""Collect a release's assets from the MLflow registry: what the GitHub release attaches.

Writes, for the registered model's ``champion`` version (the one the deploy_llm pipeline just promoted):

- ``<out>/MODEL_CARD.md``  — the model card logged at the root of the version's run;
- ``<out>/benchmark.png``  — the benchmark chart logged under ``reports/``;
- ``<out>/release.json``   — name, version, model URI, every logged metric, the lineage tags, and the chat Bento
  built for it (``--bento``, else ``$LLMSHIP_HOME/last-deploy.json`` when it records this version), plus the
  container image reference when ``--image`` is given.

Usage: ``python scripts/release_assets.py [--config configs/deploy_llm.release.yaml] [--name NAME] [--out dist]
[--bento TAG] [--image REF]``. The registry is the one every llmship command uses (``MLFLOW_TRACKING_URI``, else
the SQLite store under ``LLMSHIP_HOME``). Exits 1 with one ``release_assets: error: ...`` line when something is
missing (no champion, an artifact or the Bento tag), leaving no partial output behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from llmship.errors import LlmshipError, RegistryError
from llmship.serving.process import deploy_summary_path, last_deploy

DEFAULT_CONFIG = REPO_ROOT / "configs/deploy_llm.release.yaml"
CARD, CHART = "MODEL_CARD.md", "reports/benchmark.png"  # where llmship.release.register_release logs them
LINEAGE = ("git_commit", "config_hash", "zenml_run_id", "zenml_pipeline", "model_source", "model_identity",
           "serve_backend", "validation_status")


def registry_name(config: Path) -> str:
    """``parameters.registry.name`` of a deploy_llm config, validated by the model the pipeline uses."""
    import yaml

    from llmship.config import RegistryConfig

    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise RegistryError(f"cannot read {config}: {err}") from None
    section = (data.get("parameters") or {}).get("registry") or {}
    return RegistryConfig.model_validate(section).name


def recorded_bento(name: str, version: str) -> str | None:
    """The Bento the last deploy built, if it deployed this very version."""
    try:
        data = last_deploy()
    except ValueError:
        return None
    if data is None:
        return None
    if data.get("model_name") == name and str(data.get("model_version")) == version:
        return data.get("bento") or None
    return None


def collect(name: str, out: Path, *, bento: str | None = None, image: str | None = None,
            tracking_uri: str | None = None) -> dict[str, Any]:
    """Write the champion's card, chart and ``release.json`` into ``out``; returns what ``release.json`` holds."""
    from mlflow.exceptions import MlflowException

    from llmship.registry import ModelRegistry

    registry = ModelRegistry(tracking_uri)
    champion = registry.by_alias(name, "champion")
    if champion is None:
        raise RegistryError(f"no version of {name!r} is champion in the registry at {registry.tracking_uri}; "
                            "run the deploy_llm pipeline first")
    if not champion.run_id:
        raise RegistryError(f"{name} version {champion.version} has no run: nothing was logged for it")
    bento = bento or recorded_bento(name, champion.version)
    if not bento:
        raise RegistryError(f"no Bento is recorded for {name} version {champion.version} "
                            f"({deploy_summary_path()}); pass --bento or run deploy_llm with serve enabled")
    release: dict[str, Any] = {
        "name": name, "version": champion.version, "model_uri": champion.uri, "run_id": champion.run_id,
        "metrics": dict(sorted(registry.metrics(champion).items())),
        "lineage": {k: champion.tags[k] for k in LINEAGE if k in champion.tags},
        "bento": bento,
    }
    if image:
        release["image"] = image

    with tempfile.TemporaryDirectory(prefix="llmship-release-") as tmp:
        files = {}
        for artifact, target in ((CARD, "MODEL_CARD.md"), (CHART, "benchmark.png")):
            try:
                local = registry.client.download_artifacts(champion.run_id, artifact, tmp)
            except (MlflowException, OSError):
                raise RegistryError(f"{name} version {champion.version} (run {champion.run_id}) has no {artifact} "
                                    "artifact") from None
            files[target] = Path(local)
        # Every input is in hand before anything is written: a failure above leaves ``out`` as it was.
        out.mkdir(parents=True, exist_ok=True)
        for target, local in files.items():
            shutil.copyfile(local, out / target)
    (out / "release.json").write_text(json.dumps(release, indent=2) + "\n")
    return release


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                        help="deploy_llm config whose registry.name is released (default: %(default)s)")
    parser.add_argument("--name", help="registered model name (overrides --config)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--bento", help="chat Bento tag (default: the one last-deploy.json records for the champion)")
    parser.add_argument("--image", help="container image reference to record in release.json")
    parser.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI or the LLMSHIP_HOME one)")
    args = parser.parse_args(argv)
    try:
        name = args.name or registry_name(args.config)
        release = collect(name, args.out, bento=args.bento, image=args.image, tracking_uri=args.tracking_uri)
    except LlmshipError as err:
        print(f"release_assets: error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the script's contract: one line, never a traceback
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"release_assets: error: {type(err).__name__}: {message}", file=sys.stderr)
        return 1
    print(f"release_assets: {release['name']} version {release['version']} (bento {release['bento']}) "
          f"-> {args.out}/MODEL_CARD.md, benchmark.png, release.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
