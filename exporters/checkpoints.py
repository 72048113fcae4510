"""Which checkpoints a grouping ships, and that they are the weights training produced.

The PyTorch-vs-ONNX check cannot catch a changed checkpoint (both sides load the same damaged
weights), so before anything is exported each chosen network must have a fully trained
checkpoint whose sha256 matches a recorded digest: the grouping's own by default, or the training
run's store (what `taskgroup export` and the pipeline pass).
"""

from __future__ import annotations

from taskgroup.errors import TaskgroupError
from taskgroup.grouping import Grouping
from taskgroup_runtime.integrity import sha256_file


def require_trained_checkpoints(grouping: Grouping) -> None:
    """Every chosen network has a fully trained checkpoint on disk: an estimated (HOA) or early-stopped
    network cannot ship, and the message says how to train it."""
    for i, net in enumerate(grouping.networks):
        if net.checkpoint is None:
            label = net.label
            why = ("only its early-stopped (ESA) stage was trained" if net.stage == "early"
                   else "selection used estimated (HOA) losses for it")
            raise TaskgroupError(f"{grouping.path}: network {i} ({label}) has no fully trained checkpoint: "
                                 f"{why}. Train it (taskgroup train --networks '{label}' --out RUN --resume), then "
                                 "select again without --estimate so the trained network is chosen, and export that.")
        if not grouping.checkpoint_path(net).is_file():
            raise TaskgroupError(f"{grouping.path}: network {i}: checkpoint {grouping.checkpoint_path(net)} not found")


def grouping_checkpoint_sha256(grouping: Grouping, index: int) -> str:
    """The checkpoint's sha256, checked against the digest the grouping itself records.

    The exporter knows no training run: a grouping from a run is verified against the digest the
    run's store recorded (`taskgroup.train.store_integrity.verified_checkpoint_sha256`, what `taskgroup
    export` and the pipeline pass as `verify_checkpoint`). A checkpoint changed after training
    would pass the PyTorch-vs-ONNX check (both sides load the same damaged weights), so a
    checkpoint with no recorded digest is refused.
    """
    net = grouping.networks[index]
    checkpoint = grouping.checkpoint_path(net)
    if not net.checkpoint_sha256:
        raise TaskgroupError(f"{checkpoint}: {grouping.path} records no networks[{index}].checkpoint_sha256, so its "
                             "weights cannot be verified; export a training run's grouping with `taskgroup export` "
                             "(it checks the digest the run recorded), or record the checkpoint's sha256 in the "
                             "grouping if you vouch for the file")
    actual = sha256_file(checkpoint)
    if actual != net.checkpoint_sha256:
        raise TaskgroupError(f"{checkpoint}: does not match networks[{index}].checkpoint_sha256 of {grouping.path} "
                             f"(expected {net.checkpoint_sha256[:12]}..., found {actual[:12]}...): damaged or modified "
                             "after training; retrain it and select again")
    return actual
