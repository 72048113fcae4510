"""The end-to-end pipeline: profile -> train candidates -> select -> train the chosen networks
fully -> baselines -> export -> benchmark -> report, in one run directory.

RUN_DIR/
  pipeline.json      config and the stages finished so far (resume skips them)
  profile.json       device profile measured at the start (costs in ms)
  train/             the training run (runs.sqlite, losses.json, checkpoints/)
  selected.json      the grouping chosen on the candidates (may contain estimated networks)
  frontier.json      the whole time-vs-loss trade-off on the candidates
  best.json          the final grouping: chosen networks fully trained, evaluated on test
  baselines.json     baselines at the same budget, trained and evaluated the same way
  bundle/            the deployable bundle (taskgroup export)
  bench.json         measured latency of the bundle
  report/            report.md and figures

Each stage writes its outputs atomically and is then recorded as finished in pipeline.json;
an interrupted pipeline re-run with `resume=True` repeats no finished stage (training itself
resumes candidate by candidate).
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import DirectoryLock, differences, read_json, write_json_atomic
from taskgroup.grouping import Grouping, GroupingNetwork, same_networks
from taskgroup.grouping_records import NoiseComparison, ParsimonyRecord
from taskgroup.learnability import NotLearnt
from taskgroup.losstable import LossTable
from taskgroup.pipeline.state import STATE_FILE, STATE_KIND, STATE_VERSION, PipelineState  # noqa: F401 (callers import them here)
from taskgroup.search.profiled import standard_network_ms
from taskgroup.search.topk import estimate_errors
from taskgroup.search.withinnoise import WithinNoise
from taskgroup.search.workflow import (Budget, SelectionRequest, SelectionResult, resolve_budget, seed_noise_off,
                                       select_grouping, served_not_learnt)
from taskgroup.train.recipes import seed_noise_for
from taskgroup.tasks import PAPER_TASKS, parse_task_list
from taskgroup.train.recipes import estimator_quality_for
from taskgroup.search.robustness import robustness_sentence
from taskgroup.train.rounds import RoundsLog
from taskgroup.train import candidate_set
from taskgroup.profile.device import cpu_model
from taskgroup.train.rounds import DEFAULT_FRACTION
from taskgroup.train.run import check_seeds
from taskgroup.profile.device import parse_device, resolve_backend
from taskgroup.search.registry import get_estimator
from taskgroup.search.normalize import NORMALIZATIONS
from taskgroup.train import CANDIDATE_SETS, make_run_config
from taskgroup.train.candidates import tracks_affinity
from taskgroup.search.registry import TRAINING_PLANS
from taskgroup.train.strategies import check_affinity
from taskgroup.train.executors import create_executor
from taskgroup.train import CandidateSpec
from taskgroup.profile import load_profile
from taskgroup.search import candidates_from_table
from taskgroup.train import train_candidates
from taskgroup.search.normalize import loss_scales
from taskgroup.profile.profiler import ProfileConfig, run_profile, write_profile
from taskgroup.search import Selector, make_candidate
from taskgroup.search.profiled import round_up
from taskgroup.train.rounds import RoundsConfig, train_rounds
from taskgroup.search import frontier
from taskgroup.search.stakes import frontier_stakes
from taskgroup.pipeline.baselines import Baseline, BaselineNetwork, independent_singles, one_network, random_groupings
from taskgroup_exporters import export_bundle, validation_frames
from taskgroup.train.store_integrity import verified_checkpoint_sha256
from taskgroup.bench import measure_bundle
from taskgroup.pipeline.report import write_report
from taskgroup.pipeline.report import stakes_of
from taskgroup.bench import BenchResult
from taskgroup.pipeline.report import GroupingResult, ReportData, frontier_points
from taskgroup.search.frontier import Frontier
from taskgroup.search.profiled import device_summary
from taskgroup.search.affinity import calibration_for

DEFAULT_BUDGET_SNT = 1.5  # between one network (1) and one network per task (1.5-1.75 measured on the default preset)
BUDGET_FIELDS = ("budget_ms", "budget_snt")  # a resume may change these: only selection onwards depends on them


@dataclass(frozen=True)
class PipelineConfig:
    preset: str = "default"  # architecture, data and training recipe (taskgroup.presets / taskgroup.train)
    config_file: str | None = None  # TOML overriding preset fields, as `taskgroup train --config`
    tasks: tuple[str, ...] = PAPER_TASKS  # tasks to group (default: the paper's five)
    candidates: str = "pairs"  # candidate set trained for the search: singles | pairs | all | affinity
    estimate: str | None = "hoa"  # estimator for untrained networks: hoa (pairs), tag or cosine (affinity), None
    normalize: str = "reference"  # objective: reference (each loss / its trivial predictor's) | none (the paper's plain sum) | single
    esa: float | None = None  # Early Stopping Approximation: train candidates for this fraction only
    budget_ms: float | None = None  # budget in measured milliseconds on this device...
    budget_snt: float | None = None  # ...or in standard-network times (x the profiled all-task network); 1.2 if neither
    random_baselines: int = 3  # random groupings drawn as baselines
    seed: int = 0  # weights, batch order, random baselines (the first of `seeds` when those are given)
    seeds: tuple[int, ...] | None = None  # train every network once per seed (None: just `seed`)
    top_k: int = 1  # finalize trains the networks of the k best groupings under the estimate and re-chooses (1: off)
    device: str = "cpu"  # device to profile and benchmark on
    backend: str = "onnxruntime"  # profiling backend; the runtime uses ONNX Runtime

    def __post_init__(self) -> None:
        if self.candidates == "rounds" and self.esa is None:  # rounds start from every candidate's early stage

            object.__setattr__(self, "esa", DEFAULT_FRACTION)
        if self.seeds is not None:

            seeds = check_seeds(list(self.seeds))
            object.__setattr__(self, "seeds", None if seeds == (self.seed,) else seeds)
            object.__setattr__(self, "seed", seeds[0])
        if self.budget_ms is None and self.budget_snt is None:
            object.__setattr__(self, "budget_snt", DEFAULT_BUDGET_SNT)
        if self.budget_ms is not None and self.budget_snt is not None:
            raise TaskgroupError("give exactly one budget: --budget-ms X or --budget-snt Y")
        budget = self.budget_ms if self.budget_ms is not None else self.budget_snt
        if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
            raise TaskgroupError(f"the budget must be a positive number, got {budget!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or not 1 <= self.top_k <= 50:
            raise TaskgroupError(f"--top-k must be an integer from 1 to 50, got {self.top_k!r}")
        if self.random_baselines < 0:
            raise TaskgroupError(f"--random-baselines must be >= 0, got {self.random_baselines}")
        self._check_stage_options()  # reads the config file, which may declare tasks: before the names are checked
        object.__setattr__(self, "tasks", parse_task_list(list(self.tasks)))
        if len(self.tasks) < 2:
            raise TaskgroupError("grouping needs at least two tasks")

    def _check_stage_options(self) -> None:
        """Every option a later stage uses is checked now, before anything is written: a typo
        must not surface after minutes of training, in a run that then cannot be resumed."""

        if self.candidates not in CANDIDATE_SETS:
            raise TaskgroupError(f"unknown candidate set '{self.candidates}'; valid sets: {', '.join(CANDIDATE_SETS)}")
        if self.estimate is not None:

            get_estimator(self.estimate)  # an unknown name fails here, listing the valid ones
            plan = TRAINING_PLANS.get(self.estimate)
            uses_table = getattr(get_estimator(self.estimate), "uses_table", False)
            if uses_table and self.candidates != plan:
                what = {"affinity": "the affinity measured while training the all-task network",
                        "base": "the all-task network alone (full and half width) and its affinity",
                        "rounds": "the early stage of every candidate, trained in rounds"}[plan]
                raise TaskgroupError(f"--estimate {self.estimate} estimates from {what}: use it with "
                                     f"--candidates {plan}")
            if self.candidates in ("affinity", "base", "rounds") and plan != self.candidates:
                fitting = sorted(e for e, p in TRAINING_PLANS.items() if p == self.candidates)
                raise TaskgroupError(f"--candidates {self.candidates} trains no pairs for --estimate {self.estimate}; "
                                     f"use --estimate {' or '.join(fitting)} (or none: measured networks only)")
        if self.candidates in ("base", "rounds") and self.normalize == "single":
            raise TaskgroupError(f"--candidates {self.candidates} trains no single for --normalize single; use "
                                 "reference or none")
        if self.normalize not in NORMALIZATIONS:
            raise TaskgroupError(f"unknown normalisation '{self.normalize}'; valid options: {', '.join(NORMALIZATIONS)}")
        run_config = make_run_config(self.preset, self.config_file, seed=self.seed, esa_fraction=self.esa)

        if tracks_affinity(self.candidates):

            check_affinity(run_config.train.strategy)
        resolve_backend(self.backend, parse_device(self.device))

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["tasks"] = list(self.tasks)
        if self.seeds is None:
            del doc["seeds"]  # one seed: the document a one-seed pipeline always wrote
        else:
            doc["seeds"] = list(self.seeds)
        if self.top_k == 1:
            del doc["top_k"]  # off: the document a pipeline without re-ranking always wrote
        # What --config resolves to, not just its path: editing the file between runs must not go unnoticed.
        doc["run_config"] = make_run_config(self.preset, self.config_file, seed=self.seed,
                                            esa_fraction=self.esa).to_dict()
        doc.pop("config_file")
        return doc

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else (self.seed,)


class Pipeline:
    """Runs the stages in order; each stage is a method reading earlier stages' files."""

    def __init__(self, run_dir: str | Path, config: PipelineConfig, *, resume: bool = False,
                 say: Callable[[str], None] = print, progress=None, executor=None):
        """`executor`: where every training stage trains its networks (an ExecutorSpec or its text:
        local, processes:N, ray; taskgroup.train.executors). It is not part of the run's settings:
        a run may be resumed with another executor and gives the same losses."""

        self.run_dir = Path(run_dir)
        self.config = config
        self.say = say
        self.progress = progress
        self._data = None  # training splits, loaded once and shared by every training stage
        self._profile = None  # the measured device profile, once the profile stage has written it
        self._executor = create_executor(executor)  # opened once, kept for every training stage, closed by run()
        # One process per run directory (released when run() ends or the process exits).
        self._lock = DirectoryLock(self.run_dir)
        try:
            if resume and (self.run_dir / STATE_FILE).is_file():  # never leave a lock file in a directory that is no run
                self._lock.acquire()
            self.state = self._open_state(resume)
            if not self._lock.held:
                self._lock.acquire()
        except BaseException:
            self._executor.close()
            raise

    # ---- state
    def _open_state(self, resume: bool) -> PipelineState:
        path = self.run_dir / STATE_FILE
        if resume:
            if not path.exists():
                raise TaskgroupError(f"{self.run_dir}: nothing to resume (no {STATE_FILE}); run without --resume")
            state = PipelineState.load(self.run_dir)
            now, then = json.loads(json.dumps(self.config.to_json())), state.config
            changes = differences(then, now)
            if changes and {k.split(".")[0] for k, _, _ in changes} <= set(BUDGET_FIELDS):
                # Only the budget changed: profiles and trained networks stay valid; selection onwards is redone.
                redo = [st for st in STAGES[STAGES.index("select"):] if st in state.finished]
                for st in redo:
                    del state.finished[st]
                state.config = now
                state.save(self.run_dir)
                self.say(f"budget changed ({'; '.join(f'{k}: {a!r} -> {b!r}' for k, a, b in changes)}); "
                         f"redoing {', '.join(redo) or 'nothing finished yet'}")
            elif changes:
                changed = "; ".join(f"{k}: run has {a!r}, now {b!r}" for k, a, b in changes)
                raise TaskgroupError(f"{path}: refusing to resume with different settings ({changed}); use the "
                                     "original options or a new --out (a new budget alone is accepted)")
            return state
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise TaskgroupError(f"{self.run_dir}: exists and is not a directory; give a new --out")
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise TaskgroupError(f"{self.run_dir}: directory is not empty; use --resume to continue a run or a new --out")
        self._preflight()
        state = PipelineState(self.config.to_json())
        state.save(self.run_dir)
        return state

    def _preflight(self) -> None:
        """Problems with the architecture or the data must surface before the run directory exists,
        not after minutes of profiling: build a network, load the data, check it can train."""
        from taskgroup.train.trainer import build_model, check_trainable, load_run_data

        config = self.run_config()
        model = build_model(config, CandidateSpec(self.config.tasks))  # a bad architecture fails before the data loads
        self.say("loading data (rendered and cached on first use)")
        self._data = load_run_data(config, self.config.tasks)
        check_trainable(config, self._data, model)
        self._executor.open()  # an unreachable Ray cluster or a missing GPU, too

    def run(self) -> Path:
        try:
            for stage, step in STAGE_FUNCTIONS:
                if stage in self.state.finished:
                    self.say(f"[{stage}] already finished; skipped")
                    continue
                self.say(f"[{stage}] ...")
                start = time.perf_counter()
                info = step(self) or {}
                self.state.finish(self.run_dir, stage, time.perf_counter() - start, **info)
                self.say(f"[{stage}] done in {time.perf_counter() - start:.1f} s")
            return self.run_dir / "report" / "report.md"
        finally:
            self._executor.close()
            self._lock.release()

    # ---- shared helpers
    @property
    def train_dir(self) -> Path:
        return self.run_dir / "train"

    def profile(self):
        """The profile this run measured (read once; it never changes after the profile stage)."""

        if self._profile is None:
            self._profile = load_profile(self.run_dir / "profile.json")
        return self._profile

    def budget(self) -> Budget:
        """The run's budget in ms on its profile (and the SNT multiple it came from)."""
        return resolve_budget(self.profile().standard_network_ms(), budget_ms=self.config.budget_ms,
                              budget_snt=self.config.budget_snt)

    def budget_ms(self) -> float:
        return float(self.budget().value)

    def run_config(self):
        return make_run_config(self.config.preset, self.config.config_file, seed=self.config.seed,
                               esa_fraction=self.config.esa)

    def table(self) -> LossTable:
        return LossTable.load(self.train_dir)

    def candidates(self, split: str, stage: str, estimate: str | None = None):

        return candidates_from_table(self.table(), split, stage, cost_fn=self.profile().cost_fn, estimate=estimate)

    def _train(self, specs, stages: tuple[str, ...], affinity: bool = False) -> None:
        from taskgroup.train.trainer import load_run_data

        config = self.run_config()
        resume = (self.train_dir / "runs.sqlite").exists()
        if self._data is None:
            self.say("loading data (rendered and cached on first use)")
            self._data = load_run_data(config, self.config.tasks)
        train_candidates(self.train_dir, self.config.tasks, specs, config, resume=resume, stages=stages,
                         progress=self.progress, data=self._data, seeds=self.config.seed_list, affinity=affinity,
                         executor=self._executor)

    def candidate_stage(self) -> str:
        """The stage selection reads: early with ESA; final otherwise, and for adaptive rounds (whose early
        stage only feeds their estimates)."""
        return "early" if self.config.esa is not None and self.config.candidates != "rounds" else "final"

    def within_noise(self, stage: str):
        """(the within-noise rule for a choice among networks of `stage`, or None; why it is off).

        The rule takes the cheapest grouping within one standard error of its paired difference from
        the optimum (taskgroup.search.withinnoise), from the preset's measured seed noise. It is off where
        that measurement does not hold: another recipe or task set, an objective it did not measure,
        and ESA's early losses (it was measured on fully trained networks)."""
        off = seed_noise_off(self.config.tasks, stage, self.config.normalize)
        if off:
            return None, off
        record = seed_noise_for(self.config.preset, self.run_config())
        if record is None:
            return None, (f"no seed noise was measured for this recipe (preset '{self.config.preset}'"
                          + (", changed by --config" if self.config.config_file else "") + ")")
        return WithinNoise(record, self.config.normalize, max(1, len(self.table().seed_values()))), ""

    def _select(self, cands, stage: str, path: Path, top_k: int = 1, **options: Any) -> SelectionResult:
        """The selection workflow on this run's profile and budget, with the within-noise rule where it holds;
        the grouping file's extra says why the rule was off."""
        rule, off = self.within_noise(stage)
        p = self.profile()
        return select_grouping(SelectionRequest(
            cands, self.config.tasks, self.budget(), path, self.train_dir, profile=p,
            standard_ms=standard_network_ms(p, self.config.tasks), scales=self.scales("val"), top_k=top_k,
            within_noise=rule, prefer_cheaper=True, within_noise_off=off or None, explain=False,
            check_estimated=False, reference=self.table().reference_losses, **options))

    def scales(self, split: str) -> dict[str, float] | None:
        """Per-task objective divisors on `split` (None: the paper's plain sum). `single` uses the
        fully trained single where there is one, so selection and report divide by the same network."""

        table = self.table()
        singles = [c for c in self.candidates(split, self.candidate_stage()) if len(c.tasks) == 1]
        return loss_scales(self.config.normalize, table, singles, split)

    # ---- stages
    def stage_profile(self) -> dict[str, Any]:

        preset = self.config.preset
        # The run's own architecture: a --config may change it from the preset's.
        doc = run_profile(ProfileConfig(device=self.config.device, backend=self.config.backend, preset=preset,
                                        tasks=self.config.tasks, seed=self.config.seed, arch=self.run_config().arch),
                          report=self.say)
        write_profile(doc, self.run_dir / "profile.json")
        p = self.profile()
        self.say(f"standard network (all {len(self.config.tasks)} heads, full width): {p.standard_network_ms():.3f} ms; "
                 f"budget {self.budget_ms():.3f} ms")
        return {"standard_network_ms": p.standard_network_ms(), "budget_ms": self.budget_ms()}

    def _check_budget_feasible(self) -> None:
        """Costs do not depend on losses: an impossible budget is known as soon as the profile is,
        before any training."""

        p, budget = self.profile(), self.budget_ms()
        est = get_estimator(self.config.estimate) if self.config.estimate else None
        # Affinity estimators need trained networks; they estimate every full-width group, as `all` trains.
        kind = "all" if getattr(est, "uses_table", False) else self.config.candidates
        cands = [make_candidate(s.tasks, s.width, {t: 0.0 for t in s.tasks}, p.cost_fn)
                 for s in candidate_set(kind, self.config.tasks)]
        if est is not None and kind == self.config.candidates:
            cands = est(cands, p.cost_fn)
        cheap = Selector(cands, self.config.tasks, unit="ms", corun=p.corun).cheapest()
        if cheap is not None and cheap.cost > budget * (1 + 1e-9):
            nets = ", ".join("+".join(n.candidate.tasks) + f"@{n.candidate.width:g}" for n in cheap.networks)
            raise TaskgroupError(
                f"budget {budget:.4g} ms is below the cheapest grouping these candidates allow ({cheap.cost:.4g} ms: "
                f"{nets}); resume with a larger budget, e.g. --budget-ms {round_up(cheap.cost):g} or --budget-snt "
                f"{round_up(cheap.cost / p.standard_network_ms()):g} with --resume (the profile is kept)")

    def stage_candidates(self) -> dict[str, Any]:

        self._check_budget_feasible()  # before any training

        if self.config.candidates == "rounds":
            return self._train_rounds()

        specs = candidate_set(self.config.candidates, self.config.tasks)
        self._train(specs, (self.candidate_stage(),), affinity=tracks_affinity(self.config.candidates))
        return {"networks": len(specs)}

    def _train_rounds(self) -> dict[str, Any]:
        """Adaptive training at the run's budget (taskgroup.train.rounds): every candidate to the early
        stage, then fully only those that can still change the choice."""
        from taskgroup.train.trainer import load_run_data

        config, p = self.run_config(), self.profile()
        if self._data is None:
            self.say("loading data (rendered and cached on first use)")
            self._data = load_run_data(config, self.config.tasks)
        budget = self.budget_ms()
        rounds = RoundsConfig(budget, budget, "ms", normalize=self.config.normalize, corun=p.corun)
        table, plan = train_rounds(self.train_dir, self.config.tasks, config, rounds,
                                   resume=(self.train_dir / "runs.sqlite").exists(), seeds=self.config.seed_list,
                                   progress=self.progress, data=self._data, executor=self._executor,
                                   cost_fn=p.cost_fn)
        trained = sum(1 for n in table.networks if n.stage == "final")
        self.say(f"rounds: {trained} of {sum(1 for n in table.networks if n.stage == 'early')} networks trained "
                 f"fully; {plan.reason}")
        return {"networks": len(table.networks), "trained_fully": trained}

    def stage_select(self) -> dict[str, Any]:

        cands = self.candidates("val", self.candidate_stage(), self.config.estimate)
        scales = self.scales("val")
        corun = self.profile().corun  # measured slowdown of networks run back to back
        result = self._select(cands, self.candidate_stage(), self.run_dir / "selected.json", self.config.top_k)
        sel = result.selection
        if self.config.top_k > 1:
            self.say(f"top-{self.config.top_k}: {len(result.grouping.top_k.top_k)} groupings, "
                     f"{len(result.grouping.top_k.to_train)} estimated network(s) to train in finalize")
        result.grouping.save(self.run_dir / "selected.json")
        for warning in result.warnings:
            self.say(f"WARNING: {warning.message()}")
        front = frontier(cands, tasks=self.config.tasks, unit="ms", scales=scales, corun=corun)
        tested = self.candidates("test", self.candidate_stage())
        for point in front.points:  # the report draws each trained grouping's test score beside the curve
            if not any(n.candidate.estimated for n in point.networks):
                try:
                    point.evaluate(tested, "test")
                except TaskgroupError:  # a network without test losses (e.g. an ESA-only stage): no marker
                    pass
        write_json_atomic(self.run_dir / "frontier.json", self._frontier_with_stakes(front, cands, scales, corun))
        self.say(_describe(sel))
        return {"objective": sel.objective, "cost_ms": sel.cost, "frontier_points": len(front.points)}

    def _frontier_with_stakes(self, front, cands, scales, corun: float) -> dict[str, Any]:
        """The frontier's JSON, each point with its optimum against one network at that budget
        (taskgroup.search.stakes, selection split): the budgets at which grouping matters."""

        stage = self.candidate_stage()
        record = seed_noise_for(self.config.preset, self.run_config()) \
            if set(self.config.tasks) == set(PAPER_TASKS) and stage == "final" else None
        doc = front.to_json()
        table = self.table()
        stakes = frontier_stakes(front.points, cands, self.config.tasks, "ms", scales=scales, corun=corun,
                                 table=table, split="val", stage=stage, record=record,
                                 objective=self.config.normalize)
        for point, st in zip(doc["points"], stakes):
            point["stakes"] = None if st.one_network is None else st.one_network.to_json()
        return doc

    def stage_finalize(self) -> dict[str, Any]:
        """Fully train the chosen networks that were only estimated or early-stopped, then
        re-choose which chosen network serves each task on their final validation losses (under the
        within-noise rule: these are fully trained losses, also after an ESA selection)."""

        chosen = Grouping.load(self.run_dir / "selected.json")
        # top-k: every grouping's networks (the file's summaries), else the chosen grouping's
        networks = ([n.to_json() for g in chosen.top_k.top_k for n in g.networks] if chosen.top_k and chosen.top_k.top_k
                    else [n.to_json() for n in chosen.networks])
        specs = list(dict.fromkeys(CandidateSpec(tuple(n["tasks"]), float(n["width"])) for n in networks))
        self._train(specs, ("final",))
        keys = {(frozenset(s.tasks), s.width) for s in specs}
        final = [c for c in self.candidates("val", "final") if c.key in keys]
        result = self._select(final, "final", self.run_dir / "best.json", eval_label="test",
                              eval_candidates=[c for c in self.candidates("test", "final") if c.key in keys])
        sel, grouping = result.selection, result.grouping
        grouping = dataclasses.replace(grouping, extra={"estimate_errors": estimate_errors(networks, final),
                                                        **grouping.extra})
        grouping.save(self.run_dir / "best.json")
        self.say(_describe(sel))
        for warning in result.warnings:
            self.say(f"WARNING: {warning.message()}")
        return {"objective": sel.objective, "evaluated_total": sel.evaluation.total, "cost_ms": sel.cost}

    def stage_baselines(self) -> dict[str, Any]:

        p, budget, tasks = self.profile(), self.budget_ms(), self.config.tasks
        singles = [c for c in self.candidates("val", "final") if len(c.tasks) == 1]
        if self.candidate_stage() != "final":  # ESA: singles not trained fully yet are chosen on their early losses
            have = {(c.tasks, c.width) for c in singles}
            singles += [c for c in self.candidates("val", self.candidate_stage())
                        if len(c.tasks) == 1 and (c.tasks, c.width) not in have]
        if self.config.candidates in ("base", "rounds"):  # singles never trained: chosen on their estimates
            have = {(c.tasks, c.width) for c in singles}
            singles += [c for c in self.candidates("val", "final", self.config.estimate)
                        if len(c.tasks) == 1 and (c.tasks, c.width) not in have]
        baselines = [one_network(tasks, budget, p.network_ms)]
        baselines.append(independent_singles(singles, tasks, budget, "ms", self.scales("val"), corun=p.corun))
        best = Grouping.load(self.run_dir / "best.json")
        chosen = Baseline("chosen", tuple(BaselineNetwork(n.served, n.width) for n in best.networks
                                          if n.served == n.tasks))  # a random draw equal to it says nothing
        baselines += random_groupings(tasks, budget, p.network_ms, self.config.random_baselines, self.config.seed,
                                      exclude=[*baselines, chosen], corun=p.corun)
        specs = [CandidateSpec(n.tasks, n.width) for b in baselines for n in b.networks]
        self._train(specs, ("final",))
        test = {c.key: c for c in self.candidates("test", "final")}
        docs = []
        for b in baselines:
            losses = {t: test[(frozenset(n.tasks), n.width)].losses[t] for n in b.networks for t in n.tasks}
            docs.append({"name": b.name, "cost_ms": b.cost(p.network_ms, p.corun), "test_losses": losses,
                         "total": math.fsum(losses.values()),
                         "networks": [{"tasks": list(n.tasks), "served": list(n.tasks), "width": n.width}
                                      for n in b.networks]})
        write_json_atomic(self.run_dir / "baselines.json",
                          {"schema_version": 1, "kind": "baselines", "budget_ms": budget, "baselines": docs})
        return {"baselines": len(docs)}

    def stage_export(self) -> dict[str, Any]:

        # Temporary directories of an export that was killed (the run directory is locked: no other
        # process is exporting into it).
        for stale in self.run_dir.glob(".bundle.*"):
            if stale.is_dir() and stale.name.endswith((".partial", ".old")):
                shutil.rmtree(stale)
        config = self.run_config()
        frames, source = validation_frames(config.data, self.config.tasks, 32)
        out = export_bundle(self.run_dir / "best.json", self.run_dir / "bundle", "onnx", "fp32", frames,
                            frames_source=source, overwrite=True, log=self.say,
                            verify_checkpoint=verified_checkpoint_sha256)
        return {"bundle": str(out.relative_to(self.run_dir))}

    def stage_bench(self) -> dict[str, Any]:

        # As `taskgroup bench` measures: sessions with the profile's thread count (from the manifest) and the
        # profiler's own timing function, so measured and predicted latency compare like with like.
        result = measure_bundle(self.run_dir / "bundle", device=self.config.device, runs=300)
        result.save(self.run_dir / "bench.json")
        self.say(f"bundle p50 {result.whole.p50_ms:.3f} ms (p99 {result.whole.p99_ms:.3f}); predicted "
                 f"{result.predicted_ms:.3f} ms (measured / predicted {result.measured_over_predicted:.3f}); "
                 f"budget {self.budget_ms():.3f} ms")
        return {"p50_ms": result.whole.p50_ms, "predicted_ms": result.predicted_ms}

    def stage_report(self) -> dict[str, Any]:
        data = self.report_data()
        path = write_report(self.run_dir, data)
        stakes = stakes_of(data)
        self.say(f"stakes (test split): {stakes.conclusion()}")
        self.say(f"report: {path}")
        return {"report": str(path.relative_to(self.run_dir)), "grouping_matters": stakes.matters}

    # ---- report assembly
    def report_data(self):

        best = Grouping.load(self.run_dir / "best.json")
        base = read_json(self.run_dir / "baselines.json", "baselines")
        bench = BenchResult.load(self.run_dir / "bench.json")
        front = Frontier.load(self.run_dir / "frontier.json")
        p = self.profile()
        table = self.table()

        def result(name: str, networks: list[GroupingNetwork], cost: float, losses: dict[str, float]) -> GroupingResult:
            return GroupingResult(name, networks, cost, losses, per_seed=served_per_seed(table, networks, "test"))

        chosen = result("chosen", list(best.networks), best.cost, best.evaluation.losses)
        baselines = [result(b["name"], [GroupingNetwork(tuple(n["tasks"]), tuple(n["served"]), float(n["width"]))
                                        for n in b["networks"]], b["cost_ms"], b["test_losses"])
                     for b in base["baselines"]]
        record = seed_noise_for(self.config.preset, self.run_config()) \
            if set(self.config.tasks) == set(PAPER_TASKS) else None
        return ReportData(
            tasks=list(self.config.tasks), budget=self.budget_ms(), budget_unit="ms",
            device=device_summary(p),
            chosen=chosen, baselines=baselines,
            pairwise_gains=pairwise_gains(table, "test", self.candidate_stage()), gains_split="test",
            frontier=frontier_points(front),
            latency={"p50_ms": bench.whole.p50_ms, "p90_ms": bench.whole.p90_ms, "p99_ms": bench.whole.p99_ms,
                     "predicted_ms": bench.predicted_ms, "standalone_sum_ms": bench.standalone_p50_sum_ms},
            compute=search_compute(table, self.config.tasks, self.candidate_stage(), self.config.candidates,
                                   rounds_networks(self.train_dir) if self.config.candidates == "rounds" else None),
            machine=machine_description(), notes=self._notes(best), test_scales=self.scales("test"),
            seeds=list(table.seed_values()) or [self.config.seed], objective=self.config.normalize,
            seed_noise=record,
            warnings=[w.message() for w in self.not_learnt(best)],
            gains_per_seed=pairwise_gains_per_seed(table, "test", self.candidate_stage()),
            # Robustness of the choice among every candidate (selection), not only among the chosen networks.
            robustness=robustness_text(Grouping.load(self.run_dir / "selected.json")),
            parsimony=parsimony_text(Grouping.load(self.run_dir / "selected.json"), best),
            estimate_errors=[e.to_json() for e in best.estimate_errors or ()],
            affinity=self.affinity_summary(),
        )

    def affinity_summary(self) -> dict[str, Any] | None:
        """The run's affinity (mean matrices) and how the estimator in use reads it, for the report."""

        table, stage = self.table(), self.candidate_stage()
        if table.affinity is None or stage not in table.affinity.stages():
            return None
        doc: dict[str, Any] = {"tasks": list(table.affinity.tasks), "seeds": table.affinity.seeds(stage),
                               "every": table.affinity.runs[0].every}
        for kind in table.affinity.kinds(stage):
            doc[kind] = table.affinity.mean(kind, stage)
        if self.config.estimate in table.affinity.kinds(stage):
            cal = calibration_for(table, self.config.estimate, "val", stage)
            doc["estimate"] = self.config.estimate
            doc["calibration"] = {t: {"ratio": cal.ratio[t], "explained": cal.explained(t),
                                      "residual": cal.residual[t]} for t in cal.ratio}
        return doc

    def not_learnt(self, grouping: Grouping) -> list[NotLearnt]:
        """Served tasks of a grouping whose trained network does not beat the trivial predictor on
        validation (networks only estimated are not checked)."""
        return served_not_learnt(grouping, self.table().reference_losses, measured_only=True)

    def _notes(self, best: Grouping) -> list[str]:
        notes = [f"Selection used {selection_inputs(self.config.estimate, len(self.config.tasks))}"
                 + (f" and ESA (candidates trained for {self.config.esa:g} of the schedule)"
                    if self.candidate_stage() == "early" else "")
                 + f"; the chosen networks were then trained fully and re-scored (validation objective "
                 f"{best.objective:.5f})."]
        quality = estimator_quality_for(self.config.preset, self.run_config(), self.config.tasks, self.config.normalize)
        if quality is not None and self.candidate_stage() == "final":
            sentence = quality.sentence(self.config.candidates, self.config.estimate, self.config.top_k)
            if sentence:
                notes.append(sentence)
        factor = best.corun_factor
        if factor != 1:
            notes.append(f"Predicted latencies include the co-run overhead measured in the profile: the "
                         f"{len(best.networks)} chosen networks run back to back are predicted to take "
                         f"{factor:.3f}x the sum of each alone; the baselines are costed the same way.")
        if self.config.budget_snt is not None:
            notes.append(f"The budget {self.config.budget_snt:g} SNT is {self.budget_ms():.3f} ms: "
                         f"{self.config.budget_snt:g} x the profiled standard network (all tasks, full width).")
        return notes + label_notes(self.table())


# The stages in the order they run; each reads earlier stages' files and returns what pipeline.json records.
STAGE_FUNCTIONS: tuple[tuple[str, Callable[[Pipeline], dict[str, Any] | None]], ...] = (
    ("profile", Pipeline.stage_profile),
    ("candidates", Pipeline.stage_candidates),
    ("select", Pipeline.stage_select),
    ("finalize", Pipeline.stage_finalize),
    ("baselines", Pipeline.stage_baselines),
    ("export", Pipeline.stage_export),
    ("bench", Pipeline.stage_bench),
    ("report", Pipeline.stage_report),
)
STAGES = tuple(name for name, _ in STAGE_FUNCTIONS)


def label_notes(table: LossTable) -> list[str]:
    """Tasks labelled on only part of a split (partial labels): their losses average over fewer samples."""
    notes = []
    doc = table.meta.get("labelled_samples") if isinstance(table.meta, dict) else None
    doc = doc if isinstance(doc, dict) else {}
    sizes, labelled = doc.get("samples") or {}, doc.get("labelled") or {}
    for task, per in labelled.items():
        partial = [f"{per[s]} of {sizes[s]} {s}" for s in ("train", "val", "test")
                   if s in per and s in sizes and per[s] < sizes[s]]
        if partial:
            notes.append(f"{task} is labelled on {', '.join(partial)} samples; its losses average over the labelled "
                         "pixels only.")
    return notes


def pairwise_gains(table: LossTable, split: str, stage: str) -> dict[str, dict[str, float]]:
    """The paper's pairwise table: L(half-size single of t) / L(pair {t, p} on t) - 1."""
    half = {n.tasks[0]: n.losses[split][n.tasks[0]] for n in table.networks
            if len(n.tasks) == 1 and n.width == 0.5 and n.stage == stage and split in n.losses}
    gains: dict[str, dict[str, float]] = {}
    for n in table.networks:
        if len(n.tasks) == 2 and n.width == 1.0 and n.stage == stage and split in n.losses:
            a, b = n.tasks
            for t, partner in ((a, b), (b, a)):
                if t in half and n.losses[split].get(t, 0) > 0:
                    gains.setdefault(t, {})[partner] = half[t] / n.losses[split][t] - 1
    return gains


def parsimony_text(selected: Grouping, final: Grouping | None = None) -> str | None:
    """The within-noise rule's decisions in words: the final choice among fully trained networks
    (`final`, best.json) and, when it took a cheaper grouping than its optimum, the selection on the
    candidates (`selected`) whose networks were shipped. None when neither file records the rule."""
    sentences = []
    final_block = final.parsimony if final is not None else None
    if final is not None and final.within_noise_off:
        sentences.append(f"The within-noise rule was off for the final choice: {final.within_noise_off}; "
                         "the exact optimum was taken.")
    elif final_block is not None:
        sentences.append(_rule_sentence(final_block, "Among the fully trained networks"))
    block = selected.parsimony
    if block is not None and block.chose_the_optimum is False and (
            final is None or same_networks(final.networks, selected.networks)):
        sentences.append(_rule_sentence(block, "On the candidates"))
    elif selected.within_noise_off and final is None:
        sentences.append(f"The within-noise rule was off: {selected.within_noise_off}.")
    return " ".join(sentences) or None


def _rule_sentence(block: ParsimonyRecord, where: str) -> str:
    """One decision of the within-noise rule, with the spread it used and where that came from."""
    opt = block.optimum
    compared = block.compared
    if compared is None:  # one tolerance for every pair
        if block.chose_the_optimum is not False:
            return f"{where}, the exact optimum was taken: no cheaper grouping is within {block.tolerance:.3g} of it."
        return (f"{where}, the exact optimum on the validation objective, {' + '.join(opt.networks)} (objective "
                f"{opt.objective:.5g}, {opt.cost:.4g} ms), is within {block.tolerance:.3g} of this grouping, the "
                "cheapest within that tolerance.")
    evidence = block.evidence
    seeds = evidence.run_seeds if evidence is not None and evidence.run_seeds is not None else 1
    source = (evidence.source if evidence is not None and evidence.source is not None
              else "the preset's seed-noise record")
    rule = (f"the rule takes the cheapest grouping within one standard error of its paired difference from the "
            f"optimum (paired seed-to-seed spread / sqrt({seeds}) seeds; spreads from {source})")
    if block.chose_the_optimum is not False:
        closest = min(compared, key=lambda c: c.minus_optimum - c.tolerance, default=None)
        tail = "" if closest is None else (
            f"; the closest, {' + '.join(closest.networks)}, is {closest.minus_optimum:+.4g} from it against a "
            f"tolerance of {closest.tolerance:.3g} ({_basis(closest)})")
        return f"{where}, the exact optimum was taken: no cheaper grouping is within noise of it ({rule}){tail}."
    pick = next(c for c in compared if c.chosen)
    return (f"{where}, the exact optimum on the validation objective, {' + '.join(opt.networks)} (objective "
            f"{opt.objective:.5g}, {opt.cost:.4g} ms), is {pick.minus_optimum:.4g} better than this grouping, "
            f"within the tolerance {pick.tolerance:.3g} ({_basis(pick)}), so they cannot be told apart: {rule}. "
            "The cheaper one leaves more of the budget free and lies further from it, so a new profile is less "
            "likely to change it.")


def _basis(comparison: NoiseComparison) -> str:
    spread = comparison.spread
    if spread.basis == "paired":
        return f"paired spread {spread.std:.4f} measured for these two groupings"
    return f"no paired measurement of these two groupings: {spread.text}"


def robustness_text(grouping: Grouping) -> str | None:
    """The grouping's robustness to latency noise in one sentence (None for groupings without the block)."""

    block = grouping.robustness
    return robustness_sentence(block) if block is not None else None


def served_per_seed(table: LossTable, networks: list[GroupingNetwork], split: str) -> dict[int, dict[str, float]]:
    """seed -> served task -> loss of a grouping's fully trained networks, over the seeds all of them have."""
    index = {n.key: n for n in table.networks}
    per_seed: dict[int, dict[str, float]] = {}
    seed_sets = []
    for n in networks:
        net = index.get((frozenset(n.tasks), float(n.width), "final"))
        if net is None or not net.seeds:
            return {}
        seed_sets.append(set(net.seeds))
        for t in n.served:
            for seed, value in net.per_seed(split, t).items():
                per_seed.setdefault(seed, {})[t] = value
    common = set.intersection(*seed_sets) if seed_sets else set()
    return {seed: losses for seed, losses in sorted(per_seed.items()) if seed in common}


def pairwise_gains_per_seed(table: LossTable, split: str, stage: str) -> dict[str, dict[str, dict[int, float]]]:
    """The pairwise gains of `pairwise_gains`, seed by seed (seeds both networks have)."""
    half = {n.tasks[0]: n for n in table.networks if len(n.tasks) == 1 and n.width == 0.5 and n.stage == stage}
    gains: dict[str, dict[str, dict[int, float]]] = {}
    for n in table.networks:
        if len(n.tasks) == 2 and n.width == 1.0 and n.stage == stage and len(n.seeds) > 1:
            for t, partner in ((n.tasks[0], n.tasks[1]), (n.tasks[1], n.tasks[0])):
                if t not in half:
                    continue
                h, pair = half[t].per_seed(split, t), n.per_seed(split, t)
                gains.setdefault(t, {})[partner] = {s: h[s] / pair[s] - 1 for s in sorted(set(h) & set(pair))
                                                    if pair[s] > 0}
    return gains


def rounds_networks(train_dir: Path) -> set[tuple]:
    """(tasks, width) of every network adaptive rounds trained fully (RUN/rounds.json)."""

    return {(frozenset(n["tasks"]), float(n["width"])) for r in RoundsLog.load(train_dir).rounds for n in r.networks}


def search_compute(table: LossTable, tasks: tuple[str, ...], stage: str, candidate_kind: str,
                   rounds: set[tuple] | None = None) -> dict[str, float]:
    """Training time spent on the search vs the time to train every subset at full width.

    The time of a k-task network is extrapolated linearly in k from the measured networks of
    the candidate stage (each extra head adds decoder compute). Adaptive rounds (`rounds`: the
    networks they trained fully) spent every candidate's early stage plus those networks' full runs."""
    import numpy as np


    searched = {(frozenset(c.tasks), c.width) for c in candidate_set(candidate_kind, tasks)}
    measured = [n for n in table.networks if n.stage == stage and n.wall_time_s]
    spent = math.fsum(n.wall_time_s for n in measured if (frozenset(n.tasks), n.width) in searched)
    n_trained = sum(1 for n in measured if (frozenset(n.tasks), n.width) in searched)
    if rounds is not None:
        early = [n for n in table.networks if n.stage == "early" and n.wall_time_s]
        full = [n for n in measured if (frozenset(n.tasks), n.width) in rounds]
        spent = math.fsum(n.wall_time_s for n in early) + math.fsum(n.wall_time_s for n in full)
        n_trained = len(full)
    # Per-network times come from every measured network (baselines included): more points, same recipe.
    full = [(len(n.tasks), n.wall_time_s) for n in measured if n.width == 1.0]
    half = [n.wall_time_s for n in measured if n.width == 0.5]
    ks = np.array([k for k, _ in full], dtype=float)
    ts = np.array([t for _, t in full], dtype=float)
    if len(set(ks)) >= 2:
        slope, intercept = np.polyfit(ks, ts, 1)
    else:
        slope, intercept = 0.0, float(ts.mean()) if len(ts) else 0.0
    n = len(tasks)
    from math import comb

    all_time = sum(comb(n, k) * max(0.0, intercept + slope * k) for k in range(1, n + 1))
    all_time += n * (float(np.mean(half)) if half else 0.0)
    return {"search_train_s": spent, "n_trained": n_trained,
            "all_candidates_train_s": all_time, "n_all": 2 ** n - 1 + n}


def machine_description() -> str:
    import os


    return f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def _describe(sel) -> str:
    parts = []
    for net in sel.networks:
        c = net.candidate
        parts.append(f"{'+'.join(c.tasks)}@{c.width:g} serves {','.join(net.served)} ({net.cost:.3f} ms)")
    line = f"grouping: {'; '.join(parts)}; total val loss {sel.total_loss:.5f}; cost {sel.cost:.3f} ms"
    block = getattr(sel, "parsimony", None)
    if block is not None and not block.chose_the_optimum:
        line += (f" (the cheapest within {block.tolerance:.3g} of the optimum's objective: "
                 f"{' + '.join(block.optimum.networks)}, {block.optimum.objective:.5g})")
    return line


def selection_inputs(estimate: str | None, n_tasks: int) -> str:
    """What the selection chose among, in words: HOA estimates networks of three or more tasks, so with two
    tasks there is nothing for it to estimate."""
    if estimate == "hoa" and n_tasks < 3:
        return f"measured networks only (HOA estimates networks of 3+ tasks; a {n_tasks}-task run has none)"
    used = {"hoa": "HOA-estimated higher-order networks",
            "tag": "networks estimated from the all-task network's lookahead affinity (TAG)",
            "tag-nomomentum": "networks estimated from the all-task network's lookahead affinity without the "
                              "momentum buffer",
            "cosine": "networks estimated from the all-task network's gradient cosine similarity",
            "base": "networks estimated from the all-task network alone (base-model estimation: full and half "
                    "width, and its gradient cosine; no single trained)",
            "rounds": "adaptive training in rounds (every network to an early stage, fully only those that could "
                      "still change the choice; the rest estimated from their early losses)"}
    return used.get(estimate, f"{estimate}-estimated networks") if estimate else "measured networks only"
