"""Model registry: architectures register by decorator and are built by name.

Every registered builder takes `(tasks, width, **kwargs)` and returns a `MultiTaskNet`, so
tests and profiling can iterate over the registry.
"""

from __future__ import annotations

from typing import Callable, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import parse_task_list

_MODELS: dict[str, Callable] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    def decorator(builder: Callable) -> Callable:
        if name in _MODELS:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    _import_builtin_models()
    return sorted(_MODELS)


def create_model(name: str, tasks: Sequence[str], width: float = 1.0, **kwargs):
    """Build a registered multi-task network with one head per task, at a width multiplier."""
    _import_builtin_models()
    if name not in _MODELS:
        raise TaskgroupError(f"unknown model '{name}'; registered models: {', '.join(sorted(_MODELS))}")
    if not (isinstance(width, (int, float)) and 0 < width <= 4):
        raise TaskgroupError(f"model width must be in (0, 4], got {width!r}")
    return _MODELS[name](tasks=parse_task_list(list(tasks)), width=float(width), **kwargs)


def _import_builtin_models() -> None:
    # Importing the module runs its @register_model decorators.
    from taskgroup.models import xception  # noqa: F401
