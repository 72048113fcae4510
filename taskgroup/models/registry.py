"""Model registry: architectures are built by name.

Every builder takes `(tasks, width, **kwargs)` and returns a `MultiTaskNet`, so tests and
profiling can iterate over the registry. The built-in architecture is known by name without
importing it (it needs torch; listing or validating names must not); other architectures
register by decorator.
"""

from __future__ import annotations

from typing import Callable, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import parse_task_list

_MODELS: dict[str, Callable] = {}
_BUILTIN = ("xception",)


def register_model(name: str) -> Callable[[Callable], Callable]:
    def decorator(builder: Callable) -> Callable:
        if name in _MODELS or name in _BUILTIN:
            raise ValueError(f"model '{name}' is already registered")
        _MODELS[name] = builder
        return builder

    return decorator


def list_models() -> list[str]:
    return sorted({*_MODELS, *_BUILTIN})


def create_model(name: str, tasks: Sequence[str], width: float = 1.0, **kwargs):
    """Build a registered multi-task network with one head per task, at a width multiplier."""
    if name not in _MODELS and name not in _BUILTIN:
        raise TaskgroupError(f"unknown model '{name}'; registered models: {', '.join(list_models())}")
    if not (isinstance(width, (int, float)) and 0 < width <= 4):
        raise TaskgroupError(f"model width must be in (0, 4], got {width!r}")
    builder = _MODELS[name] if name in _MODELS else _builtin_builder(name)
    return builder(tasks=parse_task_list(list(tasks)), width=float(width), **kwargs)


def _builtin_builder(name: str) -> Callable:
    from taskgroup.models.xception import xception  # torch: only when a network is built

    return {"xception": xception}[name]
