"""register_hosted: an MLflow model version whose artifact is the upstream's description (no secret)."""

from typing import Annotated

import mlflow
from zenml import get_step_context, step

from llmship.config import RegistryConfig
from llmship.hosted import HostedModel
from llmship.hosted.check import HostedCheckReport
from llmship.lineage import git_commit
from llmship.registry import ModelRegistry, ModelVersionRef
from llmship.release import register_hosted as register_hosted_core
from steps._stack import tracker_name, tracking_uri


@step(experiment_tracker=tracker_name())
def register_hosted(hosted: HostedModel, check: HostedCheckReport, chart: str, config: RegistryConfig,
                    config_hash: str) -> Annotated[ModelVersionRef, "model_version"]:
    run = mlflow.active_run()
    context = get_step_context()
    lineage = {"git_commit": git_commit(), "config_hash": config_hash,
               "zenml_run_id": str(context.pipeline_run.id), "zenml_pipeline": context.pipeline.name}
    ref = register_hosted_core(ModelRegistry(tracking_uri()), config.name, hosted, smoke=check.smoke,
                               bench=check.bench, ppl=check.perplexity,
                               perplexity_unavailable=check.perplexity_unavailable, chart=chart, lineage=lineage,
                               params={"experiment": config.experiment}, run_id=run.info.run_id if run else None)
    print(f"result: registered {ref.name} version {ref.version} (hosted: {hosted.describe()})")
    return ref
