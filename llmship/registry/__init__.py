"""The MLflow model registry: versions with metrics and lineage, aliases, promotion."""

from llmship.registry.mlflow_registry import ModelRegistry, ModelVersionRef, Promotion

__all__ = ["ModelRegistry", "ModelVersionRef", "Promotion"]
