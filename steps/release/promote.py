"""promote: champion only if every gate passes; otherwise challenger and the pipeline stops."""

from typing import Annotated

from zenml import step

from llmship.registry import ModelRegistry, ModelVersionRef, Promotion
from llmship.release import promote_release
from llmship.validate.gates import GateThresholds
from steps._stack import tracking_uri


@step
def promote(version: ModelVersionRef, gates: GateThresholds, with_parity: bool = True) -> Annotated[
        Promotion, "promotion"]:
    promotion = promote_release(ModelRegistry(tracking_uri()), version, gates, with_parity=with_parity)
    print(f"result: {promotion.name} version {promotion.version} is {promotion.status}")
    return promotion
