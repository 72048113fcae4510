"""Multi-task networks: a registry of architectures and safe checkpoints."""

from taskgroup.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from taskgroup.models.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "save_checkpoint", "load_checkpoint", "read_checkpoint"]
