"""The whole time-vs-loss trade-off: every budget at which the optimal grouping changes.

Start with no budget: the optimum there, at its least cost c1, holds for every budget
>= c1. Then solve again with the budget just below c1 (the optimum is strictly worse), and
so on until no grouping fits. Each step is one exact solve, so the curve is exact and has
one point per distinct optimum (groupings whose costs differ by less than `BUDGET_STEP`,
relative, count as the same budget).

The file (frontier.json) is one contract: `Frontier.to_json` writes it, `Frontier.from_json` /
`Frontier.load` read it back. A frontier read from a file holds what the file records: each
network's tasks, served tasks, width and cost (as its fixed cost), not its per-task losses.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from taskgroup.errors import SchemaError
from taskgroup.fileio import read_json, require, require_number
from taskgroup.search.candidates import Candidate
from taskgroup.search.problem import BUDGET_STEP, REL_TOL
from taskgroup.search.select import Selector
from taskgroup.search.selection import ChosenNetwork, Evaluation, Selection
from taskgroup.search.select import FRONTIER_MAX_LISTED
from taskgroup.fileio import atomic_path

FRONTIER_KIND = "frontier"
SCHEMA_VERSION = 1


@dataclass
class Frontier:
    unit: str  # unit of budgets and costs
    tasks: tuple[str, ...]  # tasks served
    points: list[Selection]  # optimal groupings by increasing cost (= decreasing objective)
    options: dict[str, Any] = field(default_factory=dict)  # weights, normalisation, estimator, sources
    extra: dict[str, Any] = field(default_factory=dict)  # other top-level fields (e.g. the profile record), verbatim
    point_extra: list[dict[str, Any]] = field(default_factory=list)  # per point, its other fields (e.g. stakes), verbatim

    def optimum_at(self, budget: float) -> Selection | None:
        """The optimal grouping for `budget` (the most expensive point that fits), or None."""
        fits = [p for p in self.points if p.cost <= budget + REL_TOL * max(1.0, abs(budget))]
        return fits[-1] if fits else None

    def to_json(self) -> dict[str, Any]:
        pts = []
        for k, p in enumerate(self.points):
            nxt = self.points[k + 1].cost if k + 1 < len(self.points) else None
            doc = {
                "budget_from": p.cost,  # this grouping is optimal for budgets in [budget_from, budget_to)
                "budget_to": nxt,
                "objective": p.objective,
                "total_loss": p.total_loss,
                "cost": p.cost,
                "corun_factor": p.corun_factor,  # cost = sum of the networks' costs x this
                "networks": [{"tasks": list(n.candidate.tasks), "served": list(n.served), "width": n.candidate.width,
                              "estimated": n.candidate.estimated, "cost": n.cost} for n in p.networks],
                "optimality": p.optimality(),  # the proven lower bound on the objective at this budget, and the gap
            }
            if p.evaluation is not None:
                doc["evaluated_on"] = p.evaluation.split
                doc["evaluated_losses"] = dict(p.evaluation.losses)  # per task, so a reader can normalise them
                doc["evaluated_total"] = p.evaluation.total
                doc["evaluated_total_best_served"] = p.evaluation.total_best_served
            elif any(q.evaluation is not None for q in self.points):  # estimated networks: nothing to evaluate
                doc["evaluated_total"] = doc["evaluated_total_best_served"] = None
            pts.append({**(self.point_extra[k] if k < len(self.point_extra) else {}), **doc})
        return {**self.extra, "schema_version": SCHEMA_VERSION, "kind": FRONTIER_KIND, "unit": self.unit,
                "tasks": list(self.tasks), "options": self.options, "proven_optimal": all(p.gap == 0 for p in self.points),
                "max_relative_gap": max((p.optimality()["relative_gap"] for p in self.points), default=0.0),
                "points": pts}

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Frontier":
        return cls.from_json(read_json(path, FRONTIER_KIND, (SCHEMA_VERSION,)), path)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], path: str | os.PathLike | None = None) -> "Frontier":
        """Validate a frontier document; every problem is a SchemaError naming the file and the field."""
        where = path if path is not None else "frontier"
        if doc.get("kind") != FRONTIER_KIND:
            raise SchemaError(where, "kind", f"expected '{FRONTIER_KIND}', found {doc.get('kind')!r}")
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise SchemaError(where, "schema_version", f"unsupported version {doc.get('schema_version')!r}; "
                                                       f"supported: [{SCHEMA_VERSION}]")
        unit = require(doc, "unit", str, where)
        if unit not in ("snt", "ms"):
            raise SchemaError(where, "unit", f"expected 'snt' or 'ms', found {unit!r}")
        tasks = require(doc, "tasks", list, where)
        if not all(isinstance(t, str) for t in tasks):
            raise SchemaError(where, "tasks", "expected a list of task names")
        options = doc.get("options") or {}
        if not isinstance(options, dict):
            raise SchemaError(where, "options", f"expected an object, found {type(options).__name__}")
        points = [_point(p, i, tuple(tasks), unit, str(options.get("solver", "file")), where)
                  for i, p in enumerate(require(doc, "points", list, where))]
        if any(b.cost < a.cost for a, b in zip(points, points[1:])):
            raise SchemaError(where, "points", "expected points by increasing cost")
        extra = {k: v for k, v in doc.items() if k not in ("schema_version", "kind", "unit", "tasks", "options", "points",
                                                           "proven_optimal", "max_relative_gap")}  # those two: derived
        known = ("budget_from", "budget_to", "objective", "total_loss", "cost", "corun_factor", "networks", "optimality",
                 "evaluated_on", "evaluated_losses", "evaluated_total", "evaluated_total_best_served")
        point_extra = [{k: v for k, v in p.items() if k not in known} for p in doc["points"]]
        return cls(unit, tuple(tasks), points, dict(options), extra, point_extra)

    def _objective_label(self) -> str:
        return _objective_label_for(self.options)

    def plot(self, path: str | os.PathLike, title: str | None = None,
             beyond_noise: Sequence[bool] | None = None) -> None:
        """A step plot of the optimal objective (and evaluated total, if any) against the budget, as PNG.
        `beyond_noise`: per point, whether its optimum beats one network beyond noise (taskgroup.search.stakes);
        those points are ringed: the budgets at which grouping matters."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt


        costs = [p.cost for p in self.points]
        right = max(costs) * 1.15 if costs else 1.0
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
        xs = costs + [right]
        ax.step(xs, [p.objective for p in self.points] + [self.points[-1].objective], where="post",
                label="optimal objective (selection table)")
        ax.plot(costs, [p.objective for p in self.points], "o", color="C0")
        if beyond_noise is not None and any(beyond_noise):
            marked = [p for p, b in zip(self.points, beyond_noise) if b]
            ax.plot([p.cost for p in marked], [p.objective for p in marked], "o", markersize=13, fillstyle="none",
                    color="C3", label="beats one network beyond noise (95%)")
        # The objective may be normalised and weighted; an evaluation is the plain sum of losses: two quantities,
        # two axes, each labelled with what it is.
        handles = ax.get_legend_handles_labels()
        done = [p for p in self.points if p.evaluation is not None]
        if done:
            ev_ax = ax.twinx()
            split = done[0].evaluation.split
            if len(done) == len(self.points):
                ev = [p.evaluation.total for p in self.points]
                ev_ax.step(xs, ev + [ev[-1]], where="post", color="C1", label=f"same groupings on {split}")
                ev_ax.plot(costs, ev, "s", color="C1")
            else:  # groupings with estimated networks are skipped
                ev_ax.plot([p.cost for p in done], [p.evaluation.total for p in done], "s", color="C1",
                           label=f"trained groupings on {split}")
            ev_ax.set_ylabel(f"total loss on {split} (plain sum of task losses)", color="C1")
            more = ev_ax.get_legend_handles_labels()
            handles = (handles[0] + more[0], handles[1] + more[1])
        ax.set_xlabel(f"budget ({self.unit})")
        ax.set_ylabel(self._objective_label(), color="C0")
        ax.set_title(title or f"Optimal grouping of {len(self.tasks)} tasks vs budget")
        ax.grid(alpha=0.3)
        ax.legend(*handles)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def _point(doc: Any, i: int, tasks: tuple[str, ...], unit: str, solver: str, where: object) -> Selection:
    """One frontier point as a Selection; each network's recorded cost becomes its candidate's fixed cost."""
    f = f"points[{i}]."
    if not isinstance(doc, dict):
        raise SchemaError(where, f"points[{i}]", "expected an object")
    networks, served_by = [], {}
    for k, net in enumerate(require(doc, "networks", list, f"{where}: {f}")):
        g = f"{f}networks[{k}]."
        if not isinstance(net, dict):
            raise SchemaError(where, g[:-1], "expected an object")
        trained, served = net.get("tasks"), net.get("served")
        for name, value in (("tasks", trained), ("served", served)):
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise SchemaError(where, g + name, "expected a list of task names")
        if not set(served) <= set(trained):
            raise SchemaError(where, g + "served", f"serves {sorted(set(served) - set(trained))} it was not trained on")
        cost = require_number(net, "cost", where, prefix=g, minimum=0.0)
        width = require_number(net, "width", where, prefix=g, positive=True)
        cand = Candidate(tuple(trained), width, {}, cost, estimated=bool(net.get("estimated", False)))
        networks.append(ChosenNetwork(cand, tuple(served)))
        served_by.update({t: k for t in served})
    if sorted(served_by) != sorted(tasks):
        raise SchemaError(where, f + "networks", f"serve {sorted(served_by)}, expected every task {sorted(tasks)}")
    evaluation = None
    total = require_number(doc, "evaluated_total", where, prefix=f, optional=True)
    if total is not None:  # evaluated_on and evaluated_losses are absent in files written before they were recorded
        losses = doc.get("evaluated_losses") or {}
        if not isinstance(losses, dict):
            raise SchemaError(where, f + "evaluated_losses", "expected an object task -> loss")
        losses = {t: require_number(losses, t, where, prefix=f + "evaluated_losses.") for t in losses}
        best = require_number(doc, "evaluated_total_best_served", where, prefix=f, optional=True)
        evaluation = Evaluation(str(doc.get("evaluated_on") or "unknown"), losses, total,
                                total if best is None else best)
    cost = require_number(doc, "cost", where, prefix=f, minimum=0.0)
    factor = require_number(doc, "corun_factor", where, prefix=f, optional=True)
    if factor is not None and not 1 <= factor < math.inf:
        raise SchemaError(where, f + "corun_factor", f"expected a number >= 1, found {factor}")
    optimality = doc.get("optimality") or {}  # absent in files written before bounds were recorded: exact
    if not isinstance(optimality, dict):
        raise SchemaError(where, f + "optimality", "expected an object")
    bound = None if optimality.get("proven_optimal", True) else \
        require_number(optimality, "lower_bound", where, prefix=f + "optimality.")
    search = optimality.get("search")
    return Selection(tasks=list(tasks), budget=require_number(doc, "budget_from", where, prefix=f, optional=True),
                     unit=unit, networks=networks, served_by=served_by,
                     objective=require_number(doc, "objective", where, prefix=f),
                     total_loss=require_number(doc, "total_loss", where, prefix=f), cost=cost, solver=solver,
                     evaluation=evaluation, corun_factor=1.0 if factor is None else factor, lower_bound=bound,
                     search=search if isinstance(search, dict) else None)


def _objective_label_for(options: Mapping[str, Any]) -> str:
    how = options.get("normalize") if isinstance(options, Mapping) else None
    weighted = bool(options.get("weights")) if isinstance(options, Mapping) else False
    what = {"reference": "each task's loss / its trivial predictor's", "single": "each task's loss / its single-task "
            "network's"}.get(how)
    label = "objective: " + ("sum of " + what if what else "total loss")
    return label + (", weighted" if weighted else "") + " (selection table)"


def frontier(candidates: Sequence[Candidate], *, tasks: Sequence[str] | None = None,
             max_networks: int | None = None, weights: Mapping[str, float] | None = None,
             scales: Mapping[str, float] | None = None, solver: str = "auto", unit: str = "snt",
             max_budget: float | None = None, prune: bool = True, corun: float = 0.0) -> Frontier:
    """Every distinct optimum from the unconstrained best down to the cheapest feasible grouping."""

    selector = Selector(candidates, tasks, weights=weights, scales=scales, solver=solver, prune=prune, unit=unit,
                        corun=corun, list_up_to=FRONTIER_MAX_LISTED)
    return Frontier(unit=unit, tasks=selector.problem.tasks, points=frontier_points(selector, max_networks, max_budget))


def frontier_points(selector: Selector, max_networks: int | None = None,
                    max_budget: float | None = None) -> list[Selection]:
    """The distinct optima of one selector by increasing cost (see the module's docstring)."""
    points: list[Selection] = []
    budget = max_budget
    while True:
        sel = selector.solve(budget, max_networks)
        if sel is None:
            break
        if budget is not None and sel.cost > budget + REL_TOL * max(1.0, abs(budget)):
            raise AssertionError(f"solver returned cost {sel.cost} above budget {budget}")
        points.append(sel)
        budget = sel.cost - BUDGET_STEP * max(1.0, abs(sel.cost))
        if budget < 0:
            break
    points.reverse()
    return points
