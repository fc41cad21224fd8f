"""Model sources and the conversion of any source to a standard Hugging Face folder."""

from llmship.models.build import BuiltModel, build_model
from llmship.models.source import ModelSource

__all__ = ["BuiltModel", "ModelSource", "build_model"]
