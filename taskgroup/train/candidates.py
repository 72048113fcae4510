"""Candidate networks to train: a task set and a width.

The paper's candidate sets for N tasks:
- `singles`: every task alone, at full width and at half width (the half-size singles are
  the "independent networks" baseline at the same total cost as one full network for two tasks);
- `pairs`: `singles` plus every pair of tasks at full width (the paper's default set; the
  higher-order networks are then estimated from pairs, HOA);
- `all`: every non-empty subset of tasks at full width, plus the half-width singles;
- `affinity`: `singles` plus one full-width network of all tasks, trained with inter-task
  affinity tracking (TAG); the other groups are then estimated from the affinity
  (taskgroup.search.affinity);
- `base`: no single at all: the full-width network of all tasks, trained with affinity
  tracking, and the same network at half width; every group is then estimated from these two
  (base-model estimation, taskgroup.search.base_model);
- `rounds`: the `all` set, each network first trained to the ESA fraction of its schedule only;
  adaptive training then trains fully, round by round, only the networks that can still change
  the choice (taskgroup.train.rounds, taskgroup.search.rounds).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from taskgroup.errors import TaskgroupError

CANDIDATE_SETS = ("singles", "pairs", "all", "affinity", "base", "rounds")
FULL, HALF = 1.0, 0.5


@dataclass(frozen=True)
class CandidateSpec:
    tasks: tuple[str, ...]  # tasks the network is trained on, in the run's task order
    width: float = FULL  # width multiplier: 1.0 standard, 0.5 half size

    @property
    def name(self) -> str:
        """Readable identity, also the store key: 'depth_zbuffer+normal@1'."""
        return "+".join(self.tasks) + f"@{self.width:g}"

    @property
    def file_stem(self) -> str:
        """File-name-safe identity for checkpoints."""
        return "+".join(self.tasks) + f"_w{self.width:g}"


def normalise_spec(spec: CandidateSpec, run_tasks: Sequence[str]) -> CandidateSpec:
    """Order a spec's tasks as in the run and check they belong to it, so equal sets get one key."""
    unknown = [t for t in spec.tasks if t not in run_tasks]
    if unknown:
        raise TaskgroupError(f"candidate {spec.name}: task(s) {unknown} are not in this run's tasks {list(run_tasks)}")
    if not spec.tasks or len(set(spec.tasks)) != len(spec.tasks):
        raise TaskgroupError(f"candidate {spec.name}: needs at least one task and no task twice")
    if not (isinstance(spec.width, (int, float)) and 0 < spec.width <= 4):
        raise TaskgroupError(f"candidate {spec.name}: width must be in (0, 4], got {spec.width!r}")
    return CandidateSpec(tuple(t for t in run_tasks if t in spec.tasks), float(spec.width))


def candidate_set(kind: str, tasks: Sequence[str]) -> list[CandidateSpec]:
    """The candidate networks of one of the paper's sets, in training order (singles first)."""
    if kind not in CANDIDATE_SETS:
        raise TaskgroupError(f"unknown candidate set '{kind}'; valid sets: {', '.join(CANDIDATE_SETS)}")
    tasks = tuple(tasks)
    if kind == "base":
        return [CandidateSpec(tasks, FULL), CandidateSpec(tasks, HALF)]
    specs = [CandidateSpec((t,), FULL) for t in tasks] + [CandidateSpec((t,), HALF) for t in tasks]
    if kind == "pairs":
        specs += [CandidateSpec(p, FULL) for p in itertools.combinations(tasks, 2)]
    elif kind in ("all", "rounds"):
        for k in range(2, len(tasks) + 1):
            specs += [CandidateSpec(c, FULL) for c in itertools.combinations(tasks, k)]
    elif kind == "affinity" and len(tasks) > 1:
        specs.append(CandidateSpec(tasks, FULL))
    return specs


def tracks_affinity(kind: str) -> bool:
    """Whether a candidate set trains its all-task network with affinity tracking."""
    return kind in ("affinity", "base")


def parse_networks(text: str, tasks: Sequence[str]) -> list[CandidateSpec]:
    """Networks written as 'a+b@1,c@0.5' (tasks joined by '+', '@width', 1.0 if omitted)."""
    specs = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        names, _, width = item.partition("@")
        try:
            w = float(width) if width else FULL
        except ValueError:
            raise TaskgroupError(f"network '{item}': width '{width}' is not a number (write e.g. a+b@1 or c@0.5)") from None
        specs.append(normalise_spec(CandidateSpec(tuple(n.strip() for n in names.split("+")), w), tasks))
    if not specs:
        raise TaskgroupError("--networks is empty; write networks as 'a+b@1,c@0.5'")
    return specs
