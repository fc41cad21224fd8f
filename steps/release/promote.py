"""promote: champion only if every gate passes; otherwise challenger and the pipeline stops (and the engine the
check staged in the running service, if any, is stopped: ``llmship.serving.staging``)."""

from typing import Annotated

from zenml import step

from llmship.config import ServeConfig
from llmship.registry import ModelRegistry, ModelVersionRef, Promotion
from llmship.release import promote_release
from llmship.serving.staging import discard_staged
from llmship.validate.gates import GateThresholds
from steps._stack import tracking_uri


@step
def promote(version: ModelVersionRef, gates: GateThresholds, with_parity: bool = True,
            serve: ServeConfig | None = None) -> Annotated[Promotion, "promotion"]:
    try:
        promotion = promote_release(ModelRegistry(tracking_uri()), version, gates, with_parity=with_parity)
    except Exception:
        if serve is not None and serve.enabled and discard_staged(serve):  # no swap will take the checked engine
            print(f"the engine checked in the service on port {serve.port} is stopped")
        raise
    print(f"result: {promotion.name} version {promotion.version} is {promotion.status}")
    return promotion
