"""build_model: resolve the configured source to a cached Hugging Face folder."""

from typing import Annotated

from zenml import ArtifactConfig, step
from zenml.enums import ArtifactType

from llmship.config import BuildConfig
from llmship.models import BuiltModel
from llmship.models import build_model as build_model_core
from steps._secrets import load_secrets


@step
def build_model(config: BuildConfig) -> Annotated[BuiltModel, ArtifactConfig(name="built_model",
                                                                              artifact_type=ArtifactType.MODEL)]:
    load_secrets()  # HF_TOKEN for a gated Hub model
    built = build_model_core(config.source, dtype=config.dtype)
    print(f"result: {built.source} -> {built.model_type}, {built.num_parameters / 1e6:.0f}M parameters, {built.dtype}")
    return built
