"""One selection workflow: a request (candidates, budget, profile, noise rule, top-k) -> a Grouping.

`taskgroup select` parses its flags into a `SelectionRequest`, calls `select_grouping` and renders the
result; the pipeline's select and finalize stages call the same function. What both need lives here
once: loading a loss table into selection inputs (`load_inputs`), resolving the budget
(`check_budget_flags`, `resolve_budget`), the robust choice under latency noise (with or without the
within-noise rule), the k best groupings and what is left to train, and the not-learnt check of the
served tasks (`served_not_learnt`).

The search layer does not know training recipes: which preset's seed-noise record holds for a table
is asked of the caller's `recipe_noise` (taskgroup.train.recipes.seed_noise_for). No torch here.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from taskgroup import seednoise
from taskgroup.errors import TaskgroupError
from taskgroup.grouping import Grouping, GroupingNetwork
from taskgroup.grouping_records import ExcludedByNoise, NetworkToTrain, TopK
from taskgroup.learnability import NotLearnt, not_learnt
from taskgroup.losstable import SPLITS, STAGES, LossTable, resolve_table_path
from taskgroup.profile import load_profile
from taskgroup.profile.costmodel import DeviceProfile
from taskgroup.search.candidates import Candidate
from taskgroup.search.normalize import loss_scales
from taskgroup.search.paper_tables import read_paper_table
from taskgroup.search.profiled import check_profile_for_table, profile_record, round_up, standard_network_ms
from taskgroup.search.robustness import NOISE_SIGMAS, excluded_by_noise, robust_select, with_noise_margin
from taskgroup.search.select import Selector
from taskgroup.search.selection import Selection, grouping_key
from taskgroup.search.stakes import Stakes, for_selection
from taskgroup.search.table import candidates_from_table
from taskgroup.search.topk import MAX_K, grouping_summary, networks_to_train, top_k
from taskgroup.search.withinnoise import WithinNoise
from taskgroup.seednoise import SeedNoise
from taskgroup.tasks import PAPER_TASKS

RecipeNoise = Callable[[Any, Any], Optional[SeedNoise]]  # (preset, run config) -> the record measured for it


# ---- budget ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Budget:
    """The budget as the user gave it, resolved to the unit costs are in."""
    value: Optional[float]  # in `unit` (None: no limit, for frontier)
    unit: str  # "snt" (no profile) or "ms" (costs from a profile)
    snt: Optional[float] = None  # the --budget-snt multiple, if the budget was given that way


def check_budget_flags(profile: Optional[Path], budget: Optional[float], budget_ms: Optional[float],
                       budget_snt: Optional[float]) -> None:
    """The three budget flags are exclusive and --budget-ms/--budget-snt need a profile; fail before any work."""
    if profile is None:
        if budget_ms is not None or budget_snt is not None:
            flag = "--budget-ms" if budget_ms is not None else "--budget-snt"
            raise TaskgroupError(f"{flag} needs --profile P.json (a device profile from `taskgroup profile`) to know "
                                 "what a network costs on the device; without a profile give --budget in SNT units "
                                 "(full-size network = 1, half-size = 0.5)")
        if budget is None:
            raise TaskgroupError("give a budget: --budget in SNT units, or --profile P.json with --budget-ms or "
                                 "--budget-snt")
    else:
        if budget is not None:
            raise TaskgroupError("with --profile, give the budget as --budget-ms X (milliseconds on the profiled "
                                 "device) or --budget-snt Y (Y x the profiled standard network); --budget is for "
                                 "selection without a profile")
        if budget_ms is not None and budget_snt is not None:
            raise TaskgroupError("give one of --budget-ms and --budget-snt, not both")
        if budget_ms is None and budget_snt is None:
            raise TaskgroupError("with --profile, give the budget as --budget-ms X or --budget-snt Y")
    for flag, value in (("--budget", budget), ("--budget-ms", budget_ms), ("--budget-snt", budget_snt)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TaskgroupError(f"{flag} must be a positive number, found {value:g}")


def resolve_budget(standard_ms: Optional[float], budget: Optional[float] = None, budget_ms: Optional[float] = None,
                   budget_snt: Optional[float] = None) -> Budget:
    """The budget in the unit costs are in: SNT without a profile (`standard_ms` None), else milliseconds."""
    if standard_ms is None:
        return Budget(budget, "snt")
    if budget_ms is not None:
        return Budget(float(budget_ms), "ms")
    # A budget of many standard networks can overflow in ms (1e308 SNT x 0.3 ms): every grouping fits it as
    # well as the largest finite budget, which keeps the grouping file's numbers finite (JSON has no inf).
    ms = min(float(budget_snt) * standard_ms, sys.float_info.max)
    return Budget(ms, "ms", float(budget_snt))


# ---- what the measured seed noise covers, and the not-learnt check -------------------------------------------
def seed_noise_off(tasks: Iterable[str], stage: str, objective: str) -> str:
    """Why a preset's seed-noise record does not hold for a choice ('' where it may): it was measured on
    fully trained networks of the paper's five tasks, for the objectives it lists."""
    if stage != "final":
        return "ESA's early losses (the seed noise was measured on fully trained networks)"
    if objective not in seednoise.OBJECTIVES:
        return f"the seed noise was measured for the objectives {', '.join(seednoise.OBJECTIVES)}, not '{objective}'"
    if set(tasks) != set(PAPER_TASKS):
        return "the seed noise was measured on the paper's five tasks"
    return ""


def _network_name(net: GroupingNetwork) -> str:
    """A served network as the warnings name it: tasks@width, its stage and per-task stop, estimated or not."""
    return (net.label + ("~est" if net.estimated else "") + ("" if net.stage == "final" else f"/{net.stage}")
            + ("" if net.stopped_for is None else f"/best-{net.stopped_for}") + (" (estimated)" if net.estimated else ""))


def served_not_learnt(grouping: Grouping, reference: Mapping[str, Mapping[str, float]], split: str = "val", *,
                      measured_only: bool = False) -> list[NotLearnt]:
    """Served tasks the grouping's networks do not learn (loss on `split`, the selection split, not clearly below
    the trivial predictor's). `measured_only`: skip estimated networks (their losses are no evidence either way)."""
    return not_learnt([(t, _network_name(n), (n.losses or {})[t]) for n in grouping.networks
                       if not (measured_only and n.estimated) for t in n.served if t in (n.losses or {})],
                      reference, split)


# ---- loading -------------------------------------------------------------------------------------------------
@dataclass
class Inputs:
    """Everything selection reads, resolved and validated before any output is written."""
    tasks: tuple[str, ...]  # task names in table order
    candidates: list  # selection candidates
    eval_candidates: Optional[list]  # candidates of the evaluation table, if any
    eval_label: Optional[str]  # what the evaluation table is ("test", a file name)
    table_dir: Path  # directory checkpoint paths in the loss table are relative to
    weights: Optional[dict[str, float]]  # per-task importance weights
    scales: Optional[dict[str, float]]  # per-task normalisation divisors
    options: dict  # recorded in the output for provenance
    profile: Optional[DeviceProfile] = None  # the profile the costs come from (ms), or None for SNT
    standard_ms: Optional[float] = None  # one SNT on the profile: full width serving every task of the table
    reference: dict = field(default_factory=dict)  # task -> split -> trivial-predictor loss
    split: str = "val"  # the split selection reads
    within_noise: Optional[WithinNoise] = None  # the within-noise rule where the table's recipe was measured
    table: Optional[LossTable] = None  # the loss table (None for the paper's tables): per-seed losses for the stakes
    stage: str = "final"  # the training stage selection reads
    seed_noise: Optional[SeedNoise] = None  # the preset's seed noise where the table's recipe was measured

    @property
    def corun(self) -> float:
        """The profile's measured co-run overhead per extra network (0 for SNT costs)."""
        return self.profile.corun if self.profile is not None else 0.0


def _is_tsv(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() not in (".json",)


def parse_weights(text: Optional[str]) -> Optional[dict[str, float]]:
    """'s=2,d=0.5' -> {'s': 2.0, 'd': 0.5} (None when empty)."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise TaskgroupError(f"--weights: expected TASK=NUMBER[,TASK=NUMBER...], found {part.strip()!r}") from None
    return out


def load_inputs(losses: Path, split: str, stage: str, estimate: Optional[str], evaluate: Optional[Path],
                evaluate_split: Optional[str], task_names: Optional[str], weights: Optional[str],
                normalize: str, profile: Optional[Path] = None, statistic: str = "p50",
                per_task_stopping: bool = False, recipe_noise: Optional[RecipeNoise] = None) -> Inputs:
    """A loss table (JSON, run directory or the paper's TSV), an optional evaluation table and profile, read
    into selection inputs; every flag is checked here, before any output exists."""
    if split not in SPLITS:
        raise TaskgroupError(f"--split must be one of {', '.join(SPLITS)}, got '{split}'")
    if stage not in STAGES:
        raise TaskgroupError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    if evaluate_split is not None and evaluate_split not in SPLITS:
        raise TaskgroupError(f"--evaluate-split must be one of {', '.join(SPLITS)}, got '{evaluate_split}'")
    if profile is None and statistic != "p50":
        raise TaskgroupError(f"--statistic {statistic} reads latencies from a device profile; give --profile P.json "
                             "(SNT costs have no statistic)")
    names = tuple(n.strip() for n in task_names.split(",")) if task_names else None
    if names is not None and not all(names):
        raise TaskgroupError(f"--task-names: empty name in {task_names!r}")
    if not losses.exists():
        raise TaskgroupError(f"{losses}: no such file or directory")
    if _is_tsv(losses):
        if per_task_stopping:
            raise TaskgroupError("--per-task-stopping needs a training run's loss table (the paper's tables have "
                                 "no per-task stops)")
        table = read_paper_table(losses, names, split=split, stage=stage)
        table_dir = losses.parent
    else:
        table = LossTable.load(losses)
        table_dir = resolve_table_path(losses).parent
        if names is not None:
            raise TaskgroupError("--task-names applies to the paper's tab-separated tables; a loss-table JSON names its tasks")
    prof, standard_ms, cost_fn = None, None, None
    if profile is not None:
        prof = load_profile(profile, statistic)
        check_profile_for_table(prof, table, stage, losses)
        standard_ms, cost_fn = standard_network_ms(prof, table.tasks), prof.cost_fn
    cands = candidates_from_table(table, split, stage, cost_fn=cost_fn, estimate=estimate,
                                  per_task_stopping=per_task_stopping)
    eval_cands, label = None, None
    if evaluate is not None:
        if not evaluate.exists():
            raise TaskgroupError(f"{evaluate}: no such file or directory")
        esplit = evaluate_split or "test"
        etable = read_paper_table(evaluate, table.tasks, split=esplit) if _is_tsv(evaluate) else LossTable.load(evaluate)
        if tuple(etable.tasks) != tuple(table.tasks):
            raise TaskgroupError(f"{evaluate}: tasks {list(etable.tasks)} differ from the selection table's {list(table.tasks)}")
        eval_cands = candidates_from_table(etable, esplit, "final", per_task_stopping=per_task_stopping and
                                           bool(etable.task_stops))
        label = f"{evaluate.name}:{esplit}"
    elif evaluate_split is not None:
        if _is_tsv(losses):
            raise TaskgroupError("--evaluate-split needs a loss-table JSON; for tab-separated tables give --evaluate FILE")
        eval_cands = candidates_from_table(table, evaluate_split, "final", per_task_stopping=per_task_stopping)
        label = evaluate_split
    how = normalize
    if how == "auto":  # as the pipeline: unit-free when the table knows its trivial losses, else the paper's sum
        how = "reference" if all((table.reference_losses.get(t) or {}).get(split, 0) > 0 for t in table.tasks) else "none"
    scales = loss_scales(how, table, cands, split)
    options = {"losses": str(losses), "split": split, "stage": stage, "estimate": estimate,
               **({"per_task_stopping": True} if per_task_stopping else {}),
               "evaluate": str(evaluate) if evaluate else None, "evaluate_split": evaluate_split,
               "weights": parse_weights(weights), "normalize": how, "scales": scales}
    if prof is not None:
        options["statistic"] = statistic
    run_config = table.meta.get("run_config") if isinstance(table.meta, dict) else None
    if isinstance(run_config, dict) and isinstance(run_config.get("arch"), dict):
        # What the networks were trained at: export defaults to it and refuses another input size.
        options["preset"] = run_config.get("preset")
        options["resolution"] = run_config["arch"].get("resolution")
    record = None
    if recipe_noise is not None and not options["weights"] and isinstance(run_config, dict) \
            and not seed_noise_off(table.tasks, stage, how):
        record = recipe_noise(run_config.get("preset"), run_config)
    rule = None if record is None else WithinNoise(record, how, max(1, len(table.seed_values())))
    return Inputs(table.tasks, cands, eval_cands, label, table_dir, options["weights"], scales, options,
                  prof, standard_ms, table.reference_losses, split, rule, None if _is_tsv(losses) else table, stage,
                  record)


def check_top_k(k: Any) -> None:
    """K of --top-k is checked before any work: 0 or a negative K would otherwise be ignored silently."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise TaskgroupError(f"--top-k must be an integer from 1 to {MAX_K}, got {k!r}")


# ---- the request and its result ------------------------------------------------------------------------------
@dataclass
class SelectionRequest:
    """What to choose among and under which rules. Costs of `candidates` are in the budget's unit."""
    candidates: Sequence[Candidate]  # selection candidates (measured and estimated networks)
    tasks: tuple[str, ...]  # every task the grouping must serve
    budget: Budget  # resolved (resolve_budget)
    out: Path  # where the grouping will be written: checkpoints and the profile are recorded relative to it
    table_dir: Path  # the folder the loss table's checkpoint paths are relative to
    profile: Optional[DeviceProfile] = None  # costs in ms on this profile (None: SNT)
    standard_ms: Optional[float] = None  # one SNT on the profile (budget records and SNT hints)
    weights: Optional[Mapping[str, float]] = None  # per-task importance
    scales: Optional[Mapping[str, float]] = None  # per-task normalisation divisors
    max_networks: Optional[int] = None  # at most this many networks
    solver: str = "auto"  # taskgroup.search.select.SOLVERS
    noise_sigmas: float = NOISE_SIGMAS  # a grouping fits if cost + this x its latency noise does (profiles only)
    top_k: int = 1  # also rank the k best distinct groupings and list their estimated networks (1: off)
    within_noise: Optional[WithinNoise] = None  # seed-noise rule: top-k comparisons against the best
    prefer_cheaper: bool = False  # ...and choose the cheapest grouping within noise of the optimum (profiles only)
    within_noise_off: Optional[str] = None  # why the rule is off, recorded in the grouping when given
    eval_candidates: Optional[Sequence[Candidate]] = None  # score the chosen networks on another table
    eval_label: Optional[str] = None  # what that table is ("test", "FILE:test")
    options: Optional[dict[str, Any]] = None  # provenance recorded in the grouping (None: none)
    explain: bool = True  # record the stakes, the noise rule's exclusions and not-learnt warnings in the grouping
    check_estimated: bool = True  # the not-learnt check reads estimated networks' losses too
    reference: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # trivial losses: not-learnt check
    split: str = "val"  # the split `candidates` carry losses of
    stage: str = "final"  # the training stage they come from
    table: Optional[LossTable] = None  # per-seed losses for the stakes (None: the paper's tables)
    seed_noise: Optional[SeedNoise] = None  # the preset's measured seed noise, for the stakes
    objective: str = "none"  # the normalisation the scales implement, for the stakes

    def __post_init__(self) -> None:
        check_top_k(self.top_k)
        if not (math.isfinite(self.noise_sigmas) and self.noise_sigmas >= 0):
            raise TaskgroupError(f"--noise-sigmas must be a number >= 0, found {self.noise_sigmas:g}")
        if (self.profile is None) != (self.budget.unit == "snt"):
            raise TaskgroupError(f"a budget in {self.budget.unit} needs costs in the same unit: "
                                 + ("give a device profile" if self.profile is None else "give the budget in ms"))

    @classmethod
    def from_inputs(cls, inp: Inputs, budget: Budget, out: Path, **options: Any) -> "SelectionRequest":
        """The request `taskgroup select` makes of loaded inputs (its flags as keyword options)."""
        return cls(inp.candidates, inp.tasks, budget, out, inp.table_dir, profile=inp.profile,
                   standard_ms=inp.standard_ms, weights=inp.weights, scales=inp.scales,
                   within_noise=inp.within_noise, eval_candidates=inp.eval_candidates, eval_label=inp.eval_label,
                   reference=inp.reference, split=inp.split, stage=inp.stage, table=inp.table,
                   seed_noise=inp.seed_noise, objective=inp.options["normalize"], **options)

    @property
    def corun(self) -> float:
        return self.profile.corun if self.profile is not None else 0.0


@dataclass
class SelectionResult:
    """The grouping to write and what the command line shows about it."""
    grouping: Grouping  # the file's content (not yet written)
    selection: Selection  # the choice, costed at the predictions
    profile: Optional[DeviceProfile]  # the profile as the choice used it (noise relative to the SNT for SNT budgets)
    sigmas: float  # the noise margin the choice was fitted with (0: plain prediction)
    warnings: list[NotLearnt]  # served tasks not learnt
    stakes: Optional[Stakes] = None  # how much grouping matters at this budget (explain)
    excluded: Optional[ExcludedByNoise] = None  # the better grouping the noise rule left out (explain)
    seconds: float = 0.0  # time spent choosing


def infeasible_error(selector: Selector, budget: Budget, standard_ms: Optional[float],
                     max_networks: Optional[int]) -> TaskgroupError:
    """No grouping fits: say what the cheapest one costs and the budget flag that would admit it."""
    cheap = selector.cheapest(max_networks)
    n = len(selector.problem.tasks)
    if cheap is None:
        return TaskgroupError(f"no grouping of at most {max_networks} network(s) serves all {n} tasks; raise "
                              "--max-networks")
    nets = ", ".join("+".join(x.candidate.tasks) + f"@{x.candidate.width:g}" for x in cheap.networks)
    within = "" if max_networks is None else f" with at most {max_networks} network(s)"
    if budget.unit == "ms":
        given = f"budget {budget.value:.4g} ms" + (f" ({budget.snt:g} SNT)" if budget.snt is not None else "")
        hint = (f"use --budget-ms {round_up(cheap.cost):g} or more (--budget-snt "
                f"{round_up(cheap.cost / standard_ms):g})")
        cost = f"{cheap.cost:.4g} ms"
    else:
        given = f"budget {budget.value:.10g} snt"
        hint, cost = f"use --budget {round_up(cheap.cost):g} or more", f"{cheap.cost:.10g} snt"
    return TaskgroupError(f"{given} is below every feasible grouping{within}: the cheapest grouping serving all {n} "
                          f"tasks costs {cost} ({nets}); {hint}")


def _choose(req: SelectionRequest, profile: Optional[DeviceProfile]) -> tuple[Selection, float]:
    """(the choice, the noise margin it was fitted with): exact in SNT, under the noise rule in ms."""
    limit = req.budget
    if profile is None:
        selector = Selector(req.candidates, req.tasks, weights=req.weights, scales=req.scales, solver=req.solver,
                            unit=limit.unit, corun=0.0)
        sel = selector.solve(limit.value, req.max_networks)
        if sel is None:
            raise infeasible_error(selector, limit, req.standard_ms, req.max_networks)
        return sel, 0.0
    rule = req.within_noise if req.prefer_cheaper and req.within_noise is not None else 0.0
    sel = robust_select(req.candidates, profile, limit.value, tasks=req.tasks, sigmas=req.noise_sigmas,
                        max_networks=req.max_networks, weights=req.weights, scales=req.scales, solver=req.solver,
                        relative=limit.snt is not None, prefer_cheaper_within=rule, standard_ms=req.standard_ms,
                        infeasible=lambda s: infeasible_error(s, limit, req.standard_ms, req.max_networks))
    return sel, sel.robustness.sigmas


def rank_top_k(req: SelectionRequest, chosen: Selection, profile: Optional[DeviceProfile],
               sigmas: float) -> TopK:
    """The grouping file's top-k record: the k best distinct groupings (fitted as the choice was, and the
    choice among them), the estimated networks they need trained (each once), and, where the seed noise
    was measured, each one against the best."""
    fit = req.candidates if profile is None else with_noise_margin(req.candidates, profile, sigmas)
    ranked = top_k(fit, req.budget.value, req.top_k, tasks=req.tasks, weights=req.weights, scales=req.scales,
                   unit=req.budget.unit, max_networks=req.max_networks,  # the co-run factor the choice was fitted with
                   corun=profile.fit_corun(sigmas) if profile is not None else 0.0)
    if not any(grouping_key(g) == grouping_key(chosen) for g in ranked):
        ranked = [chosen, *ranked][:req.top_k]  # the choice (e.g. cheapest within noise) is trained too
    summaries = [grouping_summary(g) for g in ranked]
    noise = req.within_noise if ranked else None
    if noise is not None:  # each one against the best: can they be told apart?
        summaries[1:] = [dataclasses.replace(doc, within_noise_of_best=noise.comparison(ranked[0], g, g.cost))
                         for g, doc in zip(ranked[1:], summaries[1:])]
    return TopK(tuple(summaries), tuple(NetworkToTrain(tuple(c.tasks), c.width) for c in networks_to_train(ranked)),
                None if noise is None else noise.evidence())


def stakes_at(req: SelectionRequest, sel: Selection, budget: float, singles: bool = True) -> Stakes:
    """How much grouping matters at this budget (taskgroup.search.stakes), on the selection split
    (`singles`: against independent singles too, not only one network)."""
    return for_selection(sel, req.candidates, req.tasks, budget, req.budget.unit, weights=req.weights,
                         scales=req.scales, corun=req.corun, table=req.table, split=req.split, stage=req.stage,
                         record=req.seed_noise, objective=req.objective, singles=singles)


def select_grouping(req: SelectionRequest) -> SelectionResult:
    """The grouping for `req`: the exact choice (under the latency-noise rule on a profile, and the within-noise
    rule when asked), evaluated, with its budget record, top-k, and what `select` explains."""
    start = time.perf_counter()
    limit = req.budget
    profile = None if req.profile is None else req.profile.with_relative_noise(limit.snt is not None)
    sel, sigmas = _choose(req, profile)
    if req.eval_candidates is not None:
        sel.evaluate(req.eval_candidates, req.eval_label)
    if req.options is not None:
        sel.options = dict(req.options, max_networks=req.max_networks, solver=req.solver)
    grouping = sel.to_grouping(req.out, req.table_dir)
    if profile is not None:
        grouping = grouping.with_budget(**profile_record(profile, req.out), standard_network_ms=req.standard_ms,
                                        **({"snt": limit.snt} if limit.snt is not None else {}))
    if req.within_noise_off is not None and not (req.prefer_cheaper and req.within_noise is not None):
        grouping = dataclasses.replace(grouping, within_noise_off=req.within_noise_off)
    if req.top_k > 1:
        grouping = dataclasses.replace(grouping, top_k=rank_top_k(req, sel, profile, sigmas))
    result = SelectionResult(grouping, sel, profile, sigmas, [])
    if req.explain:
        if profile is not None:
            result.excluded = excluded_by_noise(sel, req.candidates, profile, limit.value, sigmas, req.max_networks,
                                                tasks=req.tasks, weights=req.weights, scales=req.scales,
                                                solver=req.solver)
            if result.excluded is not None:
                grouping = dataclasses.replace(grouping, excluded_by_noise=result.excluded)
        result.stakes = stakes_at(req, sel, limit.value,
                                  singles=req.max_networks is None or req.max_networks >= len(req.tasks))
        grouping = dataclasses.replace(grouping, stakes=result.stakes.record())
    result.warnings = served_not_learnt(grouping, req.reference, req.split, measured_only=not req.check_estimated)
    if req.explain and result.warnings:
        grouping = dataclasses.replace(grouping, warnings=tuple(w.message() for w in result.warnings))
    result.grouping, result.seconds = grouping, time.perf_counter() - start
    return result
