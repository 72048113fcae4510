"""Adaptive training in rounds (`taskgroup train --candidates rounds`), resumably.

Every network of the `all` candidate set is first trained to the run's ESA fraction of its
schedule only (the early stage: the same network a full run passes through). Then, round by
round, taskgroup.search.rounds decides which networks to train fully: those of the optimum
under the estimates, then those that could still improve the optimum by more than the
tolerance at some budget of the range; it stops when none can. Networks it never trains
fully cannot change the choice beyond the tolerance (if its intervals hold).

RUN_DIR/rounds.json (kind `training_rounds`) records every round: its networks, why, the
settings it was planned with, and whether its training finished. The store commits each
(network, seed) as it finishes, so a run killed in the middle of a round loses no finished
network; resuming finishes the recorded round first (the same networks, whichever of them
finished meanwhile) and only then plans the next, so an interrupted run trains exactly what an
uninterrupted one would. A survivor is trained from the start of its schedule (the trainer
keeps no optimizer state at the early snapshot), so its early fraction is paid twice; the
compute counts it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, write_json_atomic
from taskgroup.losstable import LossTable
from taskgroup.stats import sample_variance
from taskgroup.search.candidates import snt_cost
from taskgroup.train.candidates import candidate_set
from taskgroup.train.executors import Executor, create_executor
from taskgroup.train.run import train_candidates
from taskgroup.search.rounds import MAX_TASKS
from taskgroup.search.table import candidates_from_table
from taskgroup.search.rounds import plan_round
from taskgroup.tasks import PAPER_TASKS
from taskgroup.train.recipes import seed_noise_for
from taskgroup.train.candidates import CandidateSpec

ROUNDS_FILE = "rounds.json"
KIND = "training_rounds"
SCHEMA_VERSION = 1
DEFAULT_FRACTION = 0.1  # the early stage's share of the schedule when the run sets none


@dataclass(frozen=True)
class RoundsConfig:
    """What the rounds decide against."""

    budget_low: float  # the range of budgets the choice must hold at, in `unit`
    budget_high: float
    unit: str = "snt"  # "snt" (the paper's costs: a network costs its width) or "ms" (a device profile's)
    tolerance: float | None = None  # objective units; None: the seed noise (the preset's measurement, else the run's seeds)
    confidence: float = 0.95  # two-sided coverage of each prediction interval of a final loss
    round_size: int = 2  # networks trained per round once the optimum under the estimates is trained
    normalize: str = "reference"  # the objective: reference (each loss / its trivial predictor's) | none
    corun: float = 0.0  # co-run overhead of the profile (ms costs), 0 in SNT

    def __post_init__(self) -> None:
        lo, hi = self.budget_low, self.budget_high
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)) or not 0 < lo <= hi:
            raise TaskgroupError(f"the budget range must be 0 < low <= high, got {lo!r} to {hi!r}")
        if self.tolerance is not None and not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise TaskgroupError(f"--tolerance must be a finite number >= 0, got {self.tolerance!r}")
        if not 0 < self.confidence < 1:
            raise TaskgroupError(f"--confidence must be in (0, 1), got {self.confidence!r}")
        if isinstance(self.round_size, bool) or not isinstance(self.round_size, int) or self.round_size < 1:
            raise TaskgroupError(f"--round-size must be a positive integer, got {self.round_size!r}")
        if self.normalize not in ("reference", "none"):
            raise TaskgroupError(f"rounds normalise the objective by reference or none, not {self.normalize!r}")


@dataclass
class Round:
    networks: list[dict[str, Any]]  # [{"tasks": [...], "width": w}] trained fully in this round
    reason: str  # why (the plan's sentence)
    settings: dict[str, Any]  # the RoundsConfig and tolerance it was planned with
    finished: bool = False  # every network of it committed, for every seed


@dataclass
class RoundsLog:
    rounds: list[Round] = field(default_factory=list)
    done: dict[str, Any] | None = None  # the last plan, when it found nothing left to train

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "kind": KIND, "rounds": [asdict(r) for r in self.rounds],
                "done": self.done}

    @classmethod
    def load(cls, run_dir: Path) -> "RoundsLog":
        path = run_dir / ROUNDS_FILE
        if not path.exists():
            return cls()
        doc = read_json(path, KIND, (SCHEMA_VERSION,))
        raw = doc.get("rounds")
        if not isinstance(raw, list):
            raise SchemaError(path, "rounds", "expected a list of rounds")
        rounds = []
        for i, r in enumerate(raw):
            nets = r.get("networks") if isinstance(r, dict) else None
            if not isinstance(nets, list) or not all(isinstance(n, dict) and isinstance(n.get("tasks"), list)
                                                     and isinstance(n.get("width"), (int, float)) for n in nets):
                raise SchemaError(path, f"rounds[{i}].networks", "expected a list of {tasks, width}")
            if not isinstance(r.get("finished"), bool):
                raise SchemaError(path, f"rounds[{i}].finished", "expected true or false")
            rounds.append(Round(nets, str(r.get("reason", "")), dict(r.get("settings") or {}), r["finished"]))
        done = doc.get("done")
        if done is not None and not isinstance(done, dict):
            raise SchemaError(path, "done", "expected an object or null")
        return cls(rounds, done)

    def save(self, run_dir: Path) -> None:
        write_json_atomic(run_dir / ROUNDS_FILE, self.to_json())

    def last_settings(self) -> dict[str, Any] | None:
        """The settings the latest plan was made with (None before any)."""
        if self.done is not None:
            return dict(self.done.get("settings") or {}) or None
        return dict(self.rounds[-1].settings) if self.rounds else None


def train_rounds(run_dir: str | Path, tasks: Sequence[str], config, rounds: RoundsConfig, *, resume: bool = False,
                 seeds: Sequence[int] | None = None, progress=None, data=None, executor=None, cost_fn=None):
    """Run (or resume) adaptive training; return (the loss table, the last plan).

    `cost_fn` costs networks (a device profile's, with `rounds.unit` "ms"); None: SNT (width)."""
    from taskgroup.train.trainer import Progress

    if config.esa_fraction is None:
        raise TaskgroupError("adaptive rounds first train every network to a fraction of its schedule: give it with "
                             f"--esa FRACTION (e.g. {DEFAULT_FRACTION})")

    if len(tasks) > MAX_TASKS:  # before any of the 2^n early networks is trained
        raise TaskgroupError(f"adaptive rounds train every subset's early stage and bound every set of tasks: at most "
                             f"{MAX_TASKS} tasks, got {len(tasks)}")
    run_dir, progress = Path(run_dir), progress or Progress()
    cost_fn = cost_fn or snt_cost
    owned = not isinstance(executor, Executor)
    executor = create_executor(executor) if owned else executor
    try:
        if data is None:  # loaded once for every round
            from taskgroup.train.trainer import load_run_data

            progress.message("loading data (rendered and cached on first use)")
            data = load_run_data(config, tasks)
        train = dict(config=config, progress=progress, data=data, seeds=seeds, executor=executor)
        table = train_candidates(run_dir, tasks, candidate_set("rounds", tasks), resume=resume, stages=("early",), **train)
        seeds = seeds if seeds is not None else table.seed_values() or None
        train["seeds"] = seeds
        log = RoundsLog.load(run_dir)
        earlier = [_spec(n) for r in log.rounds if r.finished for n in r.networks]
        if earlier:  # e.g. seeds added on resume: every network trained fully so far, for every seed
            table = train_candidates(run_dir, tasks, earlier, resume=True, stages=("final",), **train)
        while True:
            if log.rounds and not log.rounds[-1].finished:
                current = log.rounds[-1]
                progress.message(f"round {len(log.rounds)}: training fully "
                                 + ", ".join(_name(n) for n in current.networks) + f" ({current.reason})")
                table = train_candidates(run_dir, tasks, [_spec(n) for n in current.networks], resume=True,
                                         stages=("final",), **train)
                current.finished = True
                log.save(run_dir)
                continue
            plan, tolerance = plan_next(table, rounds, cost_fn, config)
            settings = {**asdict(rounds), "tolerance": tolerance}
            if plan.done:
                log.done = {"reason": plan.reason, "settings": settings,
                            "dropped": [_net(k, table.tasks) for k in plan.dropped],
                            "surrogate": plan.surrogate.to_json() if plan.surrogate else None}
                log.save(run_dir)
                progress.message(f"rounds done: {plan.reason}")
                return table, plan
            log.done = None
            log.rounds.append(Round([_net(k, table.tasks) for k in plan.train], plan.reason, settings))
            log.save(run_dir)
    finally:
        if owned:
            executor.close()


def plan_next(table: LossTable, rounds: RoundsConfig, cost_fn, config=None):
    """The next round's plan from what the run holds, and the tolerance it used (`config`: the run's
    RunConfig, for the preset's measured seed noise)."""

    priors = candidates_from_table(table, "val", "early", cost_fn=cost_fn)
    measured = ([c for c in candidates_from_table(table, "val", "final", cost_fn=cost_fn)]
                if any(n.stage == "final" for n in table.networks) else [])
    scales = _scales(table, rounds.normalize)
    tolerance = rounds.tolerance if rounds.tolerance is not None else seed_noise_tolerance(table, scales, config)
    plan = plan_round(priors, measured, (rounds.budget_low, rounds.budget_high), tasks=table.tasks,
                      tolerance=tolerance, scales=scales, unit=rounds.unit, corun=rounds.corun,
                      confidence=rounds.confidence, round_size=rounds.round_size,
                      prior_seeds=per_seed(table, "early"), measured_seeds=per_seed(table, "final"))
    return plan, tolerance


def seed_noise_tolerance(table: LossTable, scales: dict[str, float] | None, config=None) -> float:
    """The seed noise of a grouping's objective (the mean over the run's seeds): the preset's
    measurement (taskgroup.seednoise: one grouping's pooled spread) where the run is the recipe it
    measured on the paper's tasks, else from the run's own
    seeds (per task, the median over fully trained networks of its objective term's variance over
    seeds; summed over tasks, one network serving each), else 0."""

    n_seeds = max(1, len(table.seed_values()))
    record = seed_noise_for(config.preset, config) if config is not None else None
    if record is not None and set(table.tasks) == set(PAPER_TASKS):  # one grouping's pooled spread
        return record.one_grouping("reference" if scales is not None else "none").std / math.sqrt(n_seeds)
    if n_seeds < 2:
        return 0.0
    total = 0.0
    for t in table.tasks:
        variances = sorted(sample_variance([v / (scales or {}).get(t, 1.0) for v in n.per_seed("val", t).values()])
                           for n in table.networks if n.stage == "final" and t in n.tasks and len(n.seeds) >= 2)
        if variances:
            total += variances[len(variances) // 2]
    return math.sqrt(total / n_seeds)


def per_seed(table: LossTable, stage: str) -> dict:
    """network key -> seed -> task -> validation loss, for one stage."""
    return {(frozenset(n.tasks), n.width): {s: dict(r.losses.get("val", {})) for s, r in n.seeds.items()}
            for n in table.networks if n.stage == stage and n.seeds}


def _scales(table: LossTable, normalize: str) -> dict[str, float] | None:
    if normalize == "none":
        return None
    scales = {t: (table.reference_losses.get(t) or {}).get("val") for t in table.tasks}
    missing = [t for t, v in scales.items() if not (isinstance(v, (int, float)) and v > 0)]
    if missing:
        raise TaskgroupError(f"normalize reference: no trivial-predictor loss for {missing}; use normalize none")
    return scales


def _net(key, order: Sequence[str]) -> dict[str, Any]:
    tasks, width = key
    return {"tasks": [t for t in order if t in tasks], "width": width}


def _spec(net: dict[str, Any]):

    return CandidateSpec(tuple(net["tasks"]), float(net["width"]))


def _name(net: dict[str, Any]) -> str:
    return "+".join(net["tasks"]) + f"@{net['width']:g}"
