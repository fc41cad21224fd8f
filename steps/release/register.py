"""register: an MLflow model version with metrics, reports, model card and lineage tags."""

from typing import Annotated

import mlflow
from zenml import get_step_context, step

from llmship.config import RegistryConfig
from llmship.lineage import git_commit
from llmship.models import BuiltModel
from llmship.registry import ModelRegistry, ModelVersionRef
from llmship.release import register_release
from llmship.validate.benchmark import BenchmarkReport
from llmship.validate.engine_check import EngineParityReport
from llmship.validate.parity import ParityReport
from llmship.validate.quality import PerplexityReport, SmokeReport
from steps._stack import tracker_name, tracking_uri


@step(experiment_tracker=tracker_name())
def register(built: BuiltModel, perplexity: PerplexityReport, smoke: SmokeReport, bench: BenchmarkReport,
             chart: str, config: RegistryConfig, config_hash: str,
             parity: ParityReport | None = None,
             engine_parity: EngineParityReport | None = None) -> Annotated[ModelVersionRef, "model_version"]:
    run = mlflow.active_run()  # opened by the stack's MLflow experiment tracker, if the stack has one
    context = get_step_context()
    lineage = {"git_commit": git_commit(), "config_hash": config_hash,
               "zenml_run_id": str(context.pipeline_run.id), "zenml_pipeline": context.pipeline.name}
    registry = ModelRegistry(tracking_uri())
    ref = register_release(registry, config.name, built, parity=parity, ppl=perplexity, smoke=smoke, bench=bench,
                           chart=chart, lineage=lineage, params={"experiment": config.experiment},
                           run_id=run.info.run_id if run else None, engine_parity=engine_parity)
    print(f"result: registered {ref.name} version {ref.version}")
    return ref
