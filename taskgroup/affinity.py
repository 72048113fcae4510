"""The inter-task affinity table of a run: what one training run of all tasks says about
which tasks help each other (torch-free: selection reads it from the loss table).

n x n matrices per (seed, stage), rows = source task i, columns = target task j, in the
affinity network's task order, each the mean over the training steps at which it was measured:
- `tag`: lookahead affinity (Fifty et al., NeurIPS 2021), A[i][j] = 1 - L_j(theta_i') / L_j(theta),
  where theta_i' is the shared (trunk) parameters after the optimizer's step on L_i alone;
  positive = a step on task i lowers task j's loss (taskgroup.train.affinity computes it);
- `tag-nomomentum`: the same lookahead without the momentum buffer (theta_i' = theta - lr x
  (grad L_i + weight decay x theta), the step TAG's published code takes). The buffer is the same
  for every source task, so it moves every lookahead alike and pulls the rows of `tag` together;
  this kind measures that compression. Measured in the same runs since it was added: older runs
  have `tag` and `cosine` only;
- `cosine`: cosine similarity of the per-task gradients on the shared parameters.

Stored in the run's results store and exported in `losses.json` under `affinity`; several
seeds are kept seed by seed and averaged on use (`AffinityTable.mean`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from taskgroup.errors import SchemaError, TaskgroupError

KINDS = ("tag", "cosine")  # the matrices every measurement holds
OPTIONAL_KINDS = ("tag-nomomentum",)  # held by measurements made since it was added
ALL_KINDS = KINDS + OPTIONAL_KINDS


@dataclass(frozen=True)
class AffinityRun:
    """The affinity measured during one training of the affinity network (one seed, one stage)."""

    seed: int
    stage: str  # "final" (the whole run) or "early" (up to the ESA step)
    steps: int  # training steps at which affinity was measured
    every: int  # it was measured every `every` optimiser steps
    seconds: float  # wall time spent measuring it (included in the network's training time)
    matrices: dict[str, list[list[float]]]  # kind -> n x n, [source][target]: every KINDS, any OPTIONAL_KINDS

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "stage": self.stage, "steps": self.steps, "every": self.every,
                "seconds": self.seconds, **{k: self.matrices[k] for k in ALL_KINDS if k in self.matrices}}


@dataclass
class AffinityTable:
    """The affinity network (its tasks and width) and its measurements, one per seed and stage."""

    tasks: tuple[str, ...]  # the affinity network's tasks: matrix row/column order
    width: float  # the affinity network's width (the full width, 1.0)
    runs: list[AffinityRun] = field(default_factory=list)

    def stages(self) -> list[str]:
        return sorted({r.stage for r in self.runs})

    def seeds(self, stage: str = "final") -> list[int]:
        return sorted(r.seed for r in self.runs if r.stage == stage)

    def kinds(self, stage: str = "final") -> list[str]:
        """The kinds every measurement of `stage` holds (an optional kind only if no run lacks it)."""
        runs = [r for r in self.runs if r.stage == stage]
        return [k for k in ALL_KINDS if runs and all(k in r.matrices for r in runs)]

    def mean(self, kind: str, stage: str = "final") -> list[list[float]]:
        """The n x n matrix averaged over seeds (each seed's own mean over its training steps)."""
        if kind not in ALL_KINDS:
            raise TaskgroupError(f"unknown affinity kind '{kind}'; valid kinds: {', '.join(ALL_KINDS)}")
        runs = [r for r in self.runs if r.stage == stage]
        if not runs:
            have = ", ".join(self.stages()) or "none"
            raise TaskgroupError(f"the affinity table has no '{stage}' measurements (stages measured: {have})")
        lacking = sorted(r.seed for r in runs if kind not in r.matrices)
        if lacking:
            raise TaskgroupError(f"the affinity of seed(s) {', '.join(map(str, lacking))} has no '{kind}' matrix (measured "
                                 f"before that kind was recorded); retrain the all-task network with affinity tracking "
                                 f"in a new run directory, or use one of: {', '.join(self.kinds(stage))}")
        n = len(self.tasks)
        return [[math.fsum(r.matrices[kind][i][j] for r in runs) / len(runs) for j in range(n)] for i in range(n)]

    def to_json(self) -> dict[str, Any]:
        return {"tasks": list(self.tasks), "width": self.width, "kinds": [k for k in ALL_KINDS if all(k in r.matrices for r in self.runs)],
                "runs": [r.to_json() for r in sorted(self.runs, key=lambda r: (r.stage, r.seed))]}

    @classmethod
    def from_json(cls, doc: Any, where: object, field_name: str = "affinity") -> "AffinityTable":
        """Parse and check an `affinity` document (names the file and field on error)."""
        f = field_name
        if not isinstance(doc, dict):
            raise SchemaError(where, f, f"expected an object, found {type(doc).__name__}")
        tasks = doc.get("tasks")
        if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) for t in tasks) \
                or len(set(tasks)) != len(tasks):
            raise SchemaError(where, f + ".tasks", "expected a non-empty list of distinct task names")
        width = doc.get("width")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not (math.isfinite(width) and width > 0):
            raise SchemaError(where, f + ".width", f"expected a positive width, found {width!r}")
        raw_runs = doc.get("runs")
        if not isinstance(raw_runs, list):
            raise SchemaError(where, f + ".runs", "expected a list of measurements")
        n, runs, seen = len(tasks), [], set()
        for k, raw in enumerate(raw_runs):
            g = f"{f}.runs[{k}]"
            if not isinstance(raw, dict):
                raise SchemaError(where, g, "expected an object")
            seed, stage, steps, every = raw.get("seed"), raw.get("stage"), raw.get("steps"), raw.get("every")
            for name, value, minimum in (("seed", seed, 0), ("steps", steps, 1), ("every", every, 1)):
                if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                    raise SchemaError(where, f"{g}.{name}", f"expected an integer >= {minimum}, found {value!r}")
            if stage not in ("final", "early"):
                raise SchemaError(where, g + ".stage", f"expected 'final' or 'early', found {stage!r}")
            if (seed, stage) in seen:
                raise SchemaError(where, g, f"seed {seed} stage {stage} is listed twice")
            seen.add((seed, stage))
            seconds = raw.get("seconds", 0.0)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (math.isfinite(seconds)
                                                                                         and seconds >= 0):
                raise SchemaError(where, g + ".seconds", f"expected a non-negative number, found {seconds!r}")
            matrices = {kind: _matrix(raw.get(kind), n, f"{g}.{kind}", where) for kind in KINDS}
            matrices.update({kind: _matrix(raw[kind], n, f"{g}.{kind}", where) for kind in OPTIONAL_KINDS if kind in raw})
            runs.append(AffinityRun(seed, stage, steps, every, float(seconds), matrices))
        return cls(tuple(tasks), float(width), runs)


def _matrix(raw: Any, n: int, f: str, where: object) -> list[list[float]]:
    if not isinstance(raw, list) or len(raw) != n or not all(isinstance(row, list) and len(row) == n for row in raw):
        raise SchemaError(where, f, f"expected a {n} x {n} matrix (a list of {n} rows of {n} numbers)")
    for i, row in enumerate(raw):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise SchemaError(where, f"{f}[{i}][{j}]", f"expected a finite number, found {v!r}")
    return [[float(v) for v in row] for row in raw]


def check_tasks(table_tasks: Sequence[str], affinity: AffinityTable, where: object) -> None:
    unknown = [t for t in affinity.tasks if t not in table_tasks]
    if unknown:
        raise SchemaError(where, "affinity.tasks", f"unknown task(s) {unknown}; table tasks: {list(table_tasks)}")
