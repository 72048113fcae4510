"""The runner interface every backend implements (after Polygraphy's runners).

    with OrtRunner(SessionFromOnnx(model_bytes, providers=["CPUExecutionProvider"]), name="net0") as r:
        outputs = r.infer({"image": x})          # {output name: np.ndarray}

A runner is built from a *loader*: a small callable that makes the session or engine
(`SessionFromOnnx`, `EngineFromBytes`, ...), called by `activate()`, which does the
expensive set-up. `infer()` checks the feed against the model's own input metadata
(names, dtypes, fixed dimensions) unless told not to, and is thread-safe. `deactivate()`
releases the session or engine. The deployment runtime, the profiler (which adds a
PyTorch eager runner of the same interface), the exporter's parity checks and the
benchmarks all run models through runners.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from taskgroup_runtime.errors import RuntimeInputError

# (shape with None for a dynamic axis, numpy dtype name) of one input or output tensor.
TensorMeta = tuple[tuple[int | None, ...], str]


class Runner:
    """activate / infer / deactivate, usable as a context manager."""

    name: str = "runner"
    is_active: bool = False

    def activate(self) -> None:
        if not self.is_active:
            self.activate_impl()
            self._input_metadata = self.input_metadata_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.is_active = False
            self.deactivate_impl()

    def infer(self, feed: Mapping[str, np.ndarray], check_inputs: bool = True) -> dict[str, np.ndarray]:
        """Run the model on `feed` ({input name: array}); {output name: array}.

        check_inputs: compare the feed with the model's input metadata first (a wrong name,
        dtype or fixed dimension is a RuntimeInputError naming the runner and the tensor).
        Callers that validated their input already (a bundle's frames) skip it.
        """
        if not self.is_active:
            raise RuntimeError(f"runner {self.name} is not active; call activate() or use it in a `with` block")
        if check_inputs:
            check_feed(self.name, feed, self._input_metadata)
        return self.infer_impl(feed)

    def get_input_metadata(self) -> dict[str, TensorMeta]:
        """{input name: (shape with None for dynamic axes, numpy dtype name)} of the loaded model."""
        self._require_active("get_input_metadata")
        return dict(self._input_metadata)

    def get_output_metadata(self) -> dict[str, TensorMeta]:
        """{output name: (shape with None for dynamic axes, numpy dtype name)} of the loaded model."""
        self._require_active("get_output_metadata")
        return self.output_metadata_impl()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def _require_active(self, what: str) -> None:
        if not self.is_active:
            raise RuntimeError(f"runner {self.name} is not active; activate it before {what}()")

    # Subclasses implement these.
    def activate_impl(self) -> None:
        raise NotImplementedError

    def infer_impl(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        raise NotImplementedError

    def input_metadata_impl(self) -> dict[str, TensorMeta]:
        raise NotImplementedError

    def output_metadata_impl(self) -> dict[str, TensorMeta]:
        raise NotImplementedError


def check_feed(runner: str, feed: Mapping[str, np.ndarray], expected: Mapping[str, TensorMeta]) -> None:
    """The feed must name exactly the model's inputs, each an array of its dtype and fixed dimensions."""
    if set(feed) != set(expected):
        raise RuntimeInputError(f"{runner}: fed {sorted(feed)}, the model takes {sorted(expected)}")
    for name, (shape, dtype) in expected.items():
        x = feed[name]
        if not isinstance(x, np.ndarray):
            raise RuntimeInputError(f"{runner}: input '{name}' must be a numpy array, got {type(x).__name__}")
        if x.dtype.name != dtype:
            raise RuntimeInputError(f"{runner}: input '{name}' is {x.dtype.name}, the model takes {dtype}")
        if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            shown = ["?" if s is None else s for s in shape]
            raise RuntimeInputError(f"{runner}: input '{name}' has shape {list(x.shape)}, the model takes {shown}")
