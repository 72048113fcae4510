"""A bundle's models checked against its manifest at load, so a bad bundle fails there, not at a frame.

The hashes say the files are the ones export sealed; these checks say they are what the manifest
claims: every session builds, takes the manifest's input and produces the outputs it maps tasks
to, and every network computes finite outputs of the manifest's shape on a test frame. A failure
is a BundleError naming the manifest field and the file.
"""

from __future__ import annotations

import numpy as np

from taskgroup_runtime.errors import BundleError
from taskgroup_runtime.manifest import Manifest
from taskgroup_runtime.runner import Runner
from taskgroup_runtime.specs import NetworkFiles


def check_io(manifest: Manifest, runners: list[Runner], backend: str) -> None:
    """The models must take the manifest's input and produce the outputs it maps tasks to.

    A manifest that disagrees with its models would otherwise load and then fail on the first
    frame (a KeyError deep in `run`, or ONNX Runtime rejecting the input's size).
    """
    spec = manifest.input
    for i, (net, runner) in enumerate(zip(manifest.networks, runners)):
        inputs = runner.get_input_metadata()
        outputs = {name: (shape[1] if len(shape) > 1 else None) for name, (shape, _) in runner.get_output_metadata().items()}
        file = file_of(net, backend)
        if list(inputs) != [spec.name]:
            raise BundleError(f"{manifest.path}: field 'input.name': network {net.name} ({file}) takes inputs "
                              f"{list(inputs)}, the manifest says '{spec.name}'")
        shape, dtype = inputs[spec.name]
        want = spec.shape
        if len(shape) != 4 or any(s is not None and w is not None and s != w for s, w in zip(shape, want)):
            shown = ["N" if s is None else s for s in shape]
            raise BundleError(f"{manifest.path}: field 'input.shape': the manifest says "
                              f"{['N' if w is None else w for w in want]}, {file} takes {shown}")
        if dtype != spec.dtype:
            raise BundleError(f"{manifest.path}: field 'input.dtype': the manifest says {spec.dtype}, {file} takes {dtype}")
        for task, o in manifest.tasks.items():
            if o.network != i:
                continue
            if o.output not in outputs:
                raise BundleError(f"{manifest.path}: task '{task}': network {net.name} has no output '{o.output}' "
                                  f"(its outputs: {sorted(outputs)})")
            if outputs[o.output] is not None and outputs[o.output] != o.channels:
                raise BundleError(f"{manifest.path}: task '{task}': the manifest says {o.channels} channels, "
                                  f"network {net.name} outputs {outputs[o.output]}")


def model_error(exc: BaseException) -> bool:
    """An error the backend raised about the model it was given (ONNX Runtime's own exception types,
    or a UnicodeDecodeError on a damaged name), as opposed to a misuse or a bug, which keep their type."""
    return (type(exc).__module__.startswith(("onnxruntime", "tensorrt", "polygraphy"))
            or isinstance(exc, UnicodeDecodeError))


def file_of(net: NetworkFiles, backend: str) -> str:
    return net.engine if backend == "tensorrt" else net.onnx


def activate(manifest: Manifest, runners: list[Runner], backend: str) -> None:
    """Build every session; a model file the backend cannot load is a BundleError naming it.

    The files' hashes matched, so such a file was broken before the manifest was sealed (or the
    manifest was re-sealed after editing): the bundle is unusable, not the backend.
    """
    for i, (net, runner) in enumerate(zip(manifest.networks, runners)):
        try:
            runner.activate()
        except Exception as exc:
            if not model_error(exc):
                raise
            key = "engine" if backend == "tensorrt" else "onnx"
            text = str(exc).strip().splitlines()
            raise BundleError(f"{manifest.path}: field 'networks[{i}].files.{key}': {getattr(net, key)} is not a model "
                              f"the backend can load ({type(exc).__name__}: {text[0][:300] if text else ''})") from exc


def probe(manifest: Manifest, runners: list[Runner], x: np.ndarray, backend: str) -> None:
    """Run every network once on a uniform grey frame: each must run, and each task's output must be
    finite float32 of the manifest's shape. A model that loads but cannot compute (a damaged
    attribute, weights re-sealed after editing) fails here, at load, instead of on the first frame."""
    for i, (net, runner) in enumerate(zip(manifest.networks, runners)):
        file = file_of(net, backend)
        try:
            outputs = runner.infer({manifest.input.name: x})
        except Exception as exc:
            if not model_error(exc):
                raise
            text = str(exc).strip().splitlines()
            raise BundleError(f"{manifest.path}: field 'networks[{i}]': {file} fails on a test frame at load "
                              f"({type(exc).__name__}: {text[0][:300] if text else ''})") from exc
        for task, o in manifest.tasks.items():
            if o.network != i:
                continue
            y = outputs[o.output]
            want = list(o.shape)
            if (y.dtype != np.float32 or y.ndim != 4 or y.shape[:2] != (1, o.channels)
                    or any(isinstance(w, int) and w != d for w, d in zip(want[2:], y.shape[2:]))):
                raise BundleError(f"{manifest.path}: field 'tasks.{task}.shape': the manifest says {want} float32, "
                                  f"{file} outputs {list(y.shape)} {y.dtype} on a test frame")
            if not np.isfinite(y).all():
                raise BundleError(f"{manifest.path}: task '{task}': {file} outputs NaN or infinity on a uniform grey "
                                  "test frame; its weights are damaged")
