"""Checkpoints: the architecture description plus the weights, nothing executable.

Loading uses `torch.load(weights_only=True)`, which refuses pickled code, so a checkpoint
from an untrusted source cannot run anything; a damaged file gives a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import atomic_path
from taskgroup.data.standardize import transforms_to_json
from taskgroup.models.registry import create_model
from taskgroup.task_tables import declare_from_json
from taskgroup.data.standardize import transforms_from_json


def save_checkpoint(model, path: str | os.PathLike, **extra: Any) -> None:
    """Write `{"arch", "state_dict", "targets", "extra"}` atomically (extra: plain numbers/strings only).

    `targets`: each head's TargetTransform as JSON (units and standardisation), so export can
    map outputs back to the dataset's units from the checkpoint alone."""
    blob = checkpoint_bytes(model, **extra)
    with atomic_path(path) as tmp:
        tmp.write_bytes(blob)


def checkpoint_bytes(model, **extra: Any) -> bytes:
    """The bytes `save_checkpoint` writes: a training worker sends them to the process that owns
    the run. The same weights give the same bytes (torch.save's archive holds no timestamps)."""
    import io

    import torch


    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    targets = transforms_to_json(getattr(model, "target_transforms", {}) or {})
    buffer = io.BytesIO()
    torch.save({"arch": model.arch_config(), "state_dict": state, "targets": targets, "extra": extra}, buffer)
    return buffer.getvalue()


def read_checkpoint(path: str | os.PathLike, sha256: str | None = None) -> dict[str, Any]:
    """Load the raw checkpoint dict safely, with errors naming the file.

    sha256: the digest recorded when the checkpoint was written; the bytes read are checked
    against it and loaded from memory, so what is loaded is exactly what was verified.
    """
    import hashlib
    import io
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise TaskgroupError(f"{path}: checkpoint not found")
    blob = path.read_bytes()
    if sha256 is not None and hashlib.sha256(blob).hexdigest() != sha256:
        raise TaskgroupError(f"{path}: checkpoint does not match its recorded sha256 {sha256[:12]}... "
                             "(damaged or modified after training)")
    if not blob.startswith(b"PK\x03\x04"):  # torch.save writes a zip archive
        raise TaskgroupError(f"{path}: not a taskgroup checkpoint (checkpoints are the zip archives torch.save "
                             f"writes; this file starts with {blob[:8]!r})")
    try:
        ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message suggests weights_only=False, which would run code from the file: never do that.
        raise TaskgroupError(f"{path}: not a taskgroup checkpoint (it holds objects other than tensors and plain "
                             "data, which are never loaded)") from None
    except Exception as exc:  # torch raises several types for damaged files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TaskgroupError(f"{path}: not a readable taskgroup checkpoint ({type(exc).__name__}: {first})") from exc
    if not isinstance(ckpt, dict) or not {"arch", "state_dict"} <= set(ckpt):
        raise TaskgroupError(f"{path}: not a taskgroup checkpoint (expected keys 'arch' and 'state_dict')")
    return ckpt


def load_checkpoint(path: str | os.PathLike, sha256: str | None = None):
    """Rebuild the network described by a checkpoint and load its weights (eval mode).

    sha256: if given, the file must match it (see read_checkpoint)."""


    ckpt = read_checkpoint(path, sha256)
    arch = ckpt["arch"]
    if isinstance(arch, dict):
        declare_from_json(arch.get("declared_tasks"), f"{path}: arch.declared_tasks")
    try:
        model = create_model(arch["name"], arch["tasks"], arch["width"], **arch.get("config", {}))
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except TaskgroupError:
        raise
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise TaskgroupError(f"{path}: checkpoint does not match its architecture ({exc})") from exc
    extra = ckpt.get("extra")
    model.checkpoint_extra = dict(extra) if isinstance(extra, dict) else {}  # e.g. the training stage it was saved at
    # Checkpoints written before target standardisation have no `targets`: their heads were
    # trained on the dataset's values directly, so no transform (identity) is the right reading.

    model.target_transforms = transforms_from_json(ckpt.get("targets") or {}, path)
    for task, tr in model.target_transforms.items():
        if task not in model.tasks or (tr.regression and len(tr.mean) != model.output_channels[task]):
            raise TaskgroupError(f"{path}: field 'targets.{task}': does not match the network's heads "
                                 f"{model.output_channels}")
    return model.eval()
