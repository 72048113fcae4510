"""Loss normalisation: make tasks with different loss scales count comparably in the objective.

The paper's objective is the plain sum of serving losses, which lets a task with large losses
(e.g. cross-entropy in nats next to L1 errors of [0, 1] maps) decide the grouping alone.
Dividing each task's loss by a scale of its own fixes that:
- `reference`: the loss of the trivial constant predictor (recorded by training);
- `single`: the loss of the task's own full-size single-task network.
"""

from __future__ import annotations

from typing import Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.search.candidates import Candidate
from taskgroup.search.pool import listed

NORMALIZATIONS = ("none", "reference", "single")


def loss_scales(how: str, table: LossTable, candidates: Sequence[Candidate], split: str) -> dict[str, float] | None:
    """Per-task divisors for `how` (None for the plain sum); a clear error if one is missing."""
    if how not in NORMALIZATIONS:
        raise TaskgroupError(f"unknown normalisation '{how}'; valid options: {', '.join(NORMALIZATIONS)}")
    if how == "none":
        return None
    scales = {}
    for t in table.tasks:
        if how == "reference":
            ref = (table.reference_losses.get(t) or {}).get(split)
            if not isinstance(ref, (int, float)) or not ref > 0:
                raise TaskgroupError(f"normalize reference: the loss table has no positive reference loss for task "
                                     f"'{t}' on split '{split}'; use normalize single or none")
            scales[t] = float(ref)
        else:
            singles = [c for c in listed(candidates) if c.tasks == (t,) and c.width == 1.0 and not c.estimated]
            if not singles or not singles[0].losses.get(t, 0) > 0:
                raise TaskgroupError(f"normalize single: no full-size single-task network with a positive loss for "
                                     f"task '{t}'; use normalize none")
            scales[t] = float(singles[0].losses[t])
    return scales
