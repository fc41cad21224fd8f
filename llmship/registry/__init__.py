"""The MLflow model registry: versions, release aliases, rollback."""

from llmship.registry.mlflow_registry import ModelRegistry, ModelVersionRef, Promotion, Rollback, resolve_served

__all__ = ["ModelRegistry", "ModelVersionRef", "Promotion", "Rollback", "resolve_served"]
