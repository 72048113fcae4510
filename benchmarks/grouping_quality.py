"""How good is each way of choosing a grouping, and at what training compute, against every subset trained?

On the built-in scenes (a preset, optionally changed by a config file, and a task list) this
trains every subset of tasks at full width plus the half-width singles (exhaustive: what the
paper's method would need to know every network), with several seeds, the ESA snapshot
recorded, the all-task network's affinity measured and the all-task network at half width
(for base-model estimation), into one resumable run directory. With every network's real
losses known, each selection method is scored exactly: at every budget of the range (SNT, the
paper's units: a full network costs 1, a half one 0.5), per seed, the test objective of the
grouping the method chooses (its chosen networks trained fully, as the pipeline's finalize
stage does), its regret against exhaustive selection on validation and against the test
oracle (the best grouping on test: unattainable, the floor), and the training compute it
spent: network-seconds from the store over exhaustive's.

Methods: exhaustive; HOA from the pairs (the paper) and HOA + top-k; ESA; TAG (the lookahead
with the optimizer's momentum buffer, and without it where the run measured that kind: the
lookahead of TAG's published code; a table compares the two) and gradient cosine affinity
(+ top-k); base-model estimation (+ top-k); adaptive rounds from the early
snapshots, at the budget, certified at 95% and at a looser 50% (simulated: the loop trains
a network by revealing its stored losses, exactly what training it again would give); rounds
over the base-model estimate; one network; the best independent singles; random groupings.

    python benchmarks/grouping_quality.py [--preset default] [--config FILE.toml] [--tasks a,b,...]
        [--run-dir DIR] [--seeds 0,1,2] [--esa 0.2] [--budgets 1.25-3] [--name grouping_quality]
        [--executor processes:2] [--train-only]

Re-running resumes the training (only missing networks are trained). Results:
benchmarks/results/NAME.{json,md,png}, with the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from _common import PrintProgress, machine, machine_line

from taskgroup.fileio import atomic_path, write_bytes_atomic

RESULTS = Path(__file__).resolve().parent / "results"
RANDOM_DRAWS = 200
GOAL_REGRET, GOAL_COMPUTE = 0.01, 0.10  # within 1% of exhaustive at every budget for at most 10% of its compute
LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e",
           "reshading": "r", "edge_occlusion": "o", "principal_curvature": "c", "rgb": "g"}


@dataclass
class Choice:
    networks: list[tuple]  # the grouping deployed: (tasks trained, width, tasks served)
    trained: set  # (frozenset(tasks), width, stage) of every network the method trained, fully or early


@dataclass
class Setting:
    """One seed's (or one published table's) networks, and how training them is counted."""

    table: object  # LossTable: every subset at full width + half singles (final: val and test; early: val)
    wall: dict  # (frozenset(tasks), width, stage) -> training network-seconds (or a cost proxy)
    scales: dict | None  # objective divisors per split: {"val": {...}, "test": {...}} or None (plain sum)
    tolerance: float  # seed noise of a grouping's objective on validation (one seed), for adaptive rounds
    base_table: object = None  # table holding the all-task network at half width and the affinity (base-model)


def key(tasks, width) -> tuple:
    return (frozenset(tasks), float(width))


def parse_range(text: str, step: float = 0.25) -> tuple[float, ...]:
    lo, _, hi = text.partition("-")
    lo, hi = float(lo), float(hi or lo)
    n = int(round((hi - lo) / step))
    return tuple(round(lo + step * i, 6) for i in range(n + 1))


class Evaluator:
    """Every method's choice at every budget for one setting."""

    def __init__(self, s: Setting, budgets, top_k: int, seed: int):
        from taskgroup.search import candidates_from_table

        self.s, self.budgets, self.top_k, self.seed = s, budgets, top_k, seed
        t = s.table
        self.tasks = t.tasks
        self.final_val = candidates_from_table(t, "val", "final")
        self.final_test = candidates_from_table(t, "test", "final")
        self.early_val = (candidates_from_table(t, "val", "early") if any(n.stage == "early" for n in t.networks)
                          else [])
        self.final_index = {c.key: c for c in self.final_val}
        self.all_final = {(k[0], k[1], "final") for k in self.final_index}

    # --- helpers
    def select_on(self, cands, budget, split="val"):
        from taskgroup.errors import TaskgroupError
        from taskgroup.search import select

        try:
            sel = select(cands, budget, tasks=self.tasks, unit="snt", scales=(self.s.scales or {}).get(split))
        except TaskgroupError:
            return None
        return [(n.candidate.tasks, n.candidate.width, tuple(n.served)) for n in sel.networks]

    def finalize(self, networks, budget):
        """As the pipeline: the chosen networks fully trained, each task served by the best of them on validation."""
        keys = {key(t, w) for t, w, _ in networks}
        return self.select_on([c for c in self.final_val if c.key in keys], budget)

    def test_total(self, networks) -> float:
        index = {c.key: c for c in self.final_test}
        scale = (self.s.scales or {}).get("test") or {}
        return math.fsum(index[key(t, w)].losses[task] / scale.get(task, 1.0)
                         for t, w, served in networks for task in served)

    def estimated_then_finalized(self, estimated, base_keys):
        """Choose on estimates, then train the chosen networks fully and re-choose among them."""
        def method(b):
            nets = self.select_on(estimated, b)
            if nets is None:
                return None
            return Choice(self.finalize(nets, b), {(k[0], k[1], "final") for k in base_keys | {key(x, w) for x, w, _ in nets}})
        return method

    def top_k_method(self, estimated, base_keys):
        """Estimate + top-k: train the networks of the k best distinct groupings under the estimate, choose
        among them measured (`base_keys`: the networks the estimate itself needed trained)."""
        from taskgroup.search.topk import top_k

        def method(b):
            groupings = top_k(estimated, b, self.top_k, tasks=self.tasks, unit="snt",
                              scales=(self.s.scales or {}).get("val"))
            if not groupings:
                return None
            keys = {key(n.candidate.tasks, n.candidate.width) for g in groupings for n in g.networks}
            nets = self.select_on([c for c in self.final_val if c.key in keys], b)
            return nets and Choice(nets, {(x[0], x[1], "final") for x in keys | base_keys})
        return method

    def rounds_method(self, priors, base_trained: set, confidence: float):
        """Adaptive rounds at the budget (taskgroup.search.rounds), simulated: training a network reveals its
        stored final losses. `base_trained`: what building the priors trained (early stages, or the base networks);
        those trained fully start measured."""
        from taskgroup.search.rounds import plan_round

        def method(b):
            measured = [self.final_index[(k[0], k[1])] for k in base_trained
                        if k[2] == "final" and (k[0], k[1]) in self.final_index]
            for _ in range(10_000):
                try:
                    plan = plan_round(priors, measured, (b, b), tasks=self.tasks, tolerance=self.s.tolerance,
                                      scales=(self.s.scales or {}).get("val"), confidence=confidence)
                except Exception as exc:  # noqa: BLE001 - no grouping fits this budget
                    if "fits a budget" in str(exc):
                        return None
                    raise
                if plan.done:
                    break
                measured += [self.final_index[k] for k in plan.train]
            nets = self.select_on(measured, b)
            return nets and Choice(nets, base_trained | {(m.key[0], m.key[1], "final") for m in measured})
        return method

    # --- the methods
    def methods(self) -> dict[str, Callable]:
        from taskgroup.losstable import LossTable
        from taskgroup.search import candidates_from_table
        from taskgroup.train import candidate_set

        t, tasks = self.s.table, self.tasks
        pairs_keys = {key(s.tasks, s.width) for s in candidate_set("pairs", tasks)}
        singles_keys = {key(s.tasks, s.width) for s in candidate_set("singles", tasks)}
        pairs_table = LossTable(t.tasks, [n for n in t.networks if key(n.tasks, n.width) in pairs_keys and
                                          n.stage == "final"], t.reference_losses, t.meta)
        hoa = candidates_from_table(pairs_table, "val", "final", estimate="hoa")
        early_trained = {(k[0], k[1], "early") for k in (c.key for c in self.early_val)}
        out: dict[str, Callable] = {}
        out["exhaustive"] = lambda b: (lambda n: n and Choice(n, set(self.all_final)))(self.select_on(self.final_val, b))
        out["test oracle"] = lambda b: (lambda n: n and Choice(n, set()))(self.select_on(self.final_test, b, "test"))
        out["HOA (pairs)"] = self.estimated_then_finalized(hoa, pairs_keys)
        out[f"HOA + top-{self.top_k}"] = self.top_k_method(hoa, pairs_keys)
        if self.early_val:
            def esa(b):
                nets = self.select_on(self.early_val, b)
                if nets is None:
                    return None
                return Choice(self.finalize(nets, b), early_trained | {(key(x, w)[0], key(x, w)[1], "final")
                                                                       for x, w, _ in nets})
            out["ESA"] = esa
            for conf in (0.95, 0.5):
                out[f"rounds from ESA ({conf:.0%})"] = self.rounds_method(self.early_val, early_trained, conf)
        for name, (estimated, base) in self.affinity_estimates(singles_keys).items():
            out[name] = self.estimated_then_finalized(estimated, base)
            out[f"{name} + top-{self.top_k}"] = self.top_k_method(estimated, base)
        base = self.base_estimate()
        if base is not None:
            estimated, base_keys = base
            out["base model"] = self.estimated_then_finalized(estimated, base_keys)
            out[f"base model + top-{self.top_k}"] = self.top_k_method(estimated, base_keys)
            priors = [c for c in estimated if c.estimated]
            out["rounds from base (95%)"] = self.rounds_method(priors, {(k[0], k[1], "final") for k in base_keys}, 0.95)
            out["rounds from base (50%)"] = self.rounds_method(priors, {(k[0], k[1], "final") for k in base_keys}, 0.5)
        out["one network"] = lambda b: Choice([(tuple(tasks), 1.0, tuple(tasks))], {(frozenset(tasks), 1.0, "final")})
        out["independent singles"] = lambda b: (lambda n: n and Choice(n, {(k[0], k[1], "final") for k in singles_keys}))(
            self.select_on([c for c in self.final_val if c.key in singles_keys], b))
        return out

    def affinity_estimates(self, singles_keys) -> dict:
        """TAG (with and, where measured, without the momentum buffer) and gradient cosine from the all-task
        network's run: name -> (estimated candidates, networks trained)."""
        import itertools

        from taskgroup.search.affinity import affinity_candidates

        t = self.s.base_table
        if t is None or t.affinity is None:
            return {}
        groups = [g for k in range(2, len(self.tasks)) for g in itertools.combinations(self.tasks, k)]
        measured = [c for c in self.final_val if c.key in singles_keys or c.key == key(self.tasks, 1.0)]
        trained = singles_keys | {key(self.tasks, 1.0)}
        names = {"tag": "TAG affinity", "tag-nomomentum": "TAG without momentum", "cosine": "gradient cosine"}
        return {names[kind]: (measured + affinity_candidates(t, groups, kind=kind, split="val"), trained)
                for kind in names if kind in t.affinity.kinds()}

    def base_estimate(self):
        """Base-model estimation from the all-task network at full and half width: (candidates, networks trained)."""
        from taskgroup.search import candidates_from_table
        from taskgroup.search.base_model import estimate_from_base

        t = self.s.base_table
        whole, half = key(self.tasks, 1.0), key(self.tasks, 0.5)
        if t is None or t.affinity is None or not any(key(n.tasks, n.width) == half for n in t.networks):
            return None
        measured = [c for c in candidates_from_table(t, "val", "final") if c.key in (whole, half)]
        return estimate_from_base(measured, lambda w, ts: (w, {x: 0.0 for x in ts}), t, "val"), {whole, half}

    def run(self) -> dict:
        out = {}
        for name, fn in self.methods().items():
            out[name] = {}
            for b in self.budgets:
                choice = fn(b)
                if not choice:
                    continue
                out[name][b] = {"networks": [name_of(n) for n in choice.networks],
                                "test_total": self.test_total(choice.networks),
                                "train_s": math.fsum(self.s.wall.get(k) or 0.0 for k in choice.trained),
                                "n_trained": len(choice.trained)}
        out["random groupings (mean)"] = self.random_mean()
        out["_network_s"] = {name_of((tuple(t for t in self.tasks if t in k[0]), k[1], ())).split("->")[0]:
                             self.s.wall.get((k[0], k[1], "final")) or 0.0 for k in self.final_index}
        return out

    def random_mean(self) -> dict:
        """Mean test objective of random groupings that fit each budget (random partitions, random widths)."""
        from taskgroup.pipeline.baselines import random_partition

        rng = random.Random(self.seed)
        index = {c.key: c for c in self.final_test}
        scale = (self.s.scales or {}).get("test") or {}
        out = {}
        for b in self.budgets:
            totals, seconds = [], []
            for _ in range(50 * RANDOM_DRAWS):
                if len(totals) == RANDOM_DRAWS:
                    break
                groups = random_partition(self.tasks, rng)
                widths = [rng.choice((0.5, 1.0)) for _ in groups]
                if sum(widths) > b + 1e-9 or any(w == 0.5 and len(g) > 1 for g, w in zip(groups, widths)):
                    continue  # only half-width singles are trained
                totals.append(math.fsum(index[key(g, w)].losses[t] / scale.get(t, 1.0)
                                        for g, w in zip(groups, widths) for t in g))
                seconds.append(math.fsum(self.s.wall.get((frozenset(g), w, "final")) or 0.0 for g, w in zip(groups, widths)))
            if totals:
                out[b] = {"test_total": math.fsum(totals) / len(totals), "draws": len(totals),
                          "train_s": math.fsum(seconds) / len(seconds), "n_trained": 0, "networks": []}
        return out


def name_of(net) -> str:
    trained, width, served = net
    text = "".join(LETTERS.get(t, t) for t in trained) + f"@{width:g}"
    return text if set(served) == set(trained) else text + "->" + "".join(LETTERS.get(t, t) for t in served)


def exhaustive_table(table, tasks):
    """The table restricted to exhaustive's networks: every subset at full width and the half-width singles."""
    from taskgroup.losstable import LossTable
    from taskgroup.train import candidate_set

    keys = {key(s.tasks, s.width) for s in candidate_set("all", tasks)}
    return LossTable(table.tasks, [n for n in table.networks if key(n.tasks, n.width) in keys], table.reference_losses,
                     table.meta)


def summarize(per_seed: dict, seeds: list, budgets, meta: dict) -> dict:
    """Per method and budget: test objective, regret against the oracle and against exhaustive, and compute over
    exhaustive's, each mean ± std over seeds (or over tables); the worst over budgets."""
    from taskgroup.stats import estimate

    methods = list(dict.fromkeys(m for s in seeds for m in per_seed[s] if not m.startswith("_")))
    exhaustive_s = {s: per_seed[s]["exhaustive"][budgets[-1]]["train_s"] for s in seeds}
    rows = {}
    for m in methods:
        rows[m] = {}
        for b in budgets:
            if not all(b in per_seed[s].get(m, {}) for s in seeds):
                continue
            totals = [per_seed[s][m][b]["test_total"] for s in seeds]
            regret = [t / per_seed[s]["test oracle"][b]["test_total"] - 1 for t, s in zip(totals, seeds)]
            regret_exh = [t / per_seed[s]["exhaustive"][b]["test_total"] - 1 for t, s in zip(totals, seeds)]
            compute = [per_seed[s][m][b]["train_s"] / exhaustive_s[s] for s in seeds]
            rows[m][b] = {"test_total": estimate(totals).__dict__, "regret_vs_oracle": estimate(regret).__dict__,
                          "regret_vs_exhaustive": estimate(regret_exh).__dict__,
                          "compute_vs_exhaustive": estimate(compute).__dict__,
                          "n_trained": [per_seed[s][m][b]["n_trained"] for s in seeds],
                          "networks": {s: per_seed[s][m][b]["networks"] for s in seeds}}
    # What training exhaustive's own choice costs: any method that trains the networks it deploys pays about this.
    floor = {b: estimate([_deployed_s(per_seed[s]["exhaustive"][b]["networks"], per_seed[s]) / exhaustive_s[s]
                          for s in seeds]).mean for b in budgets}
    summary = {}
    for m, row in rows.items():
        if m in ("test oracle",) or len(row) < len(budgets):
            continue
        summary[m] = {"worst_regret_vs_exhaustive": max(r["regret_vs_exhaustive"]["mean"] for r in row.values()),
                      "worst_regret_vs_oracle": max(r["regret_vs_oracle"]["mean"] for r in row.values()),
                      "compute_mean": math.fsum(r["compute_vs_exhaustive"]["mean"] for r in row.values()) / len(row),
                      "compute_max": max(r["compute_vs_exhaustive"]["mean"] for r in row.values())}
        s = summary[m]
        s["reaches_goal"] = s["worst_regret_vs_exhaustive"] <= GOAL_REGRET and s["compute_max"] <= GOAL_COMPUTE
    return {**meta, "seeds": list(seeds), "budgets_snt": list(budgets), "exhaustive_train_s": exhaustive_s,
            "deployed_compute": floor, "methods": rows, "summary": summary, "per_seed": per_seed}


def _deployed_s(names: list[str], seed_results: dict) -> float:
    """Training seconds of the named networks (name_of spelling), from the seed's recorded network times."""
    times = seed_results["_network_s"]
    return math.fsum(times[n.split("->")[0]] for n in names)


def markdown(doc: dict, title: str, header: list[str]) -> str:
    budgets = doc["budgets_snt"]
    lines = [f"# {title}", "", *header, "",
             "Regret = the test objective of the method's choice (its chosen networks trained fully) / that of the "
             "reference - 1, in %, mean over seeds (or tables); worst = the largest over the budgets. Compute = the "
             "method's training over exhaustive's (every subset at full width + the half-width singles), mean over "
             f"seeds; mean and largest over the budgets. Goal: within {GOAL_REGRET:.0%} of exhaustive at every "
             f"budget for at most {GOAL_COMPUTE:.0%} of its compute (the largest over the budgets).", "",
             "Training the networks of exhaustive's own choice costs " + ", ".join(
                 f"{100 * v:.0f}%" for v in doc["deployed_compute"].values()) + " of exhaustive at these budgets: "
             "a method that trains the networks it deploys pays about as much whatever its search costs.", "",
             "| method | compute mean | compute max | worst regret vs exhaustive | worst regret vs test oracle | goal |",
             "|---|---|---|---|---|---|"]
    for m, s in sorted(doc["summary"].items(), key=lambda kv: kv[1]["compute_max"]):
        lines.append(f"| {m} | {100 * s['compute_mean']:.0f}% | {100 * s['compute_max']:.0f}% | "
                     f"{100 * s['worst_regret_vs_exhaustive']:+.2f}% | {100 * s['worst_regret_vs_oracle']:+.2f}% | "
                     f"{'yes' if s['reaches_goal'] else 'no'} |")
    reached = [m for m, s in doc["summary"].items() if s["reaches_goal"] and m != "exhaustive"]
    lines += ["", "Methods that reach the goal: " + (", ".join(reached) if reached else "none") + ".", "",
              "Regret against exhaustive selection by budget (% of its test objective; negative: better on test than "
              "the validation-chosen optimum), with compute in brackets:", "",
              "| method | " + " | ".join(f"{b:g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for m, row in doc["methods"].items():
        if m in ("test oracle", "exhaustive"):
            continue
        cells = []
        for b in budgets:
            r = row.get(b) or row.get(str(b))
            cells.append("" if r is None else f"{100 * r['regret_vs_exhaustive']['mean']:+.1f} "
                                               f"({100 * r['compute_vs_exhaustive']['mean']:.0f}%)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Regret against the test oracle by budget (%, mean ± std):", "",
              "| method | " + " | ".join(f"{b:g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for m, row in doc["methods"].items():
        if m == "test oracle":
            continue
        cells = []
        for b in budgets:
            r = row.get(b) or row.get(str(b))
            g = None if r is None else r["regret_vs_oracle"]
            cells.append("" if g is None else f"{100 * g['mean']:.1f}" + ("" if g["std"] is None else f" ± {100 * g['std']:.1f}"))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines + momentum_lines(doc))


def momentum_lines(doc: dict) -> list[str]:
    """TAG's regret with and without the momentum term, budget by budget (mean over seeds), when both ran."""
    rows = doc["methods"]
    if "TAG affinity" not in rows or "TAG without momentum" not in rows:
        return []
    budgets = [b for b in doc["budgets_snt"] if (rows["TAG affinity"].get(b) or rows["TAG affinity"].get(str(b)))
               and (rows["TAG without momentum"].get(b) or rows["TAG without momentum"].get(str(b)))]
    lines = ["", "TAG's lookahead with and without the momentum buffer (the buffer is the same for every source task; "
             "benchmarks/results/tag_momentum.md measures what it does to the affinity): regret against exhaustive "
             "and against the test oracle, %, mean ± std over seeds, and the seeds on which the two chose different "
             "groupings.", "",
             "| budget | TAG vs exhaustive | without momentum vs exhaustive | TAG vs oracle | without momentum vs "
             "oracle | seeds with another choice |", "|---|---|---|---|---|---|"]

    def pct(r, what):
        g = r[what]
        return f"{100 * g['mean']:+.2f}" + ("" if g["std"] is None else f" ± {100 * g['std']:.2f}")

    for b in budgets:
        a = rows["TAG affinity"].get(b) or rows["TAG affinity"][str(b)]
        c = rows["TAG without momentum"].get(b) or rows["TAG without momentum"][str(b)]
        differ = [s for s in a["networks"] if a["networks"][s] != c["networks"].get(s)]
        lines.append(f"| {float(b):g} | {pct(a, 'regret_vs_exhaustive')} | {pct(c, 'regret_vs_exhaustive')} | "
                     f"{pct(a, 'regret_vs_oracle')} | {pct(c, 'regret_vs_oracle')} | "
                     f"{', '.join(map(str, differ)) or 'none'} |")
    return lines


def draw_regret_panel(ax, summary: dict, title: str, xlabel: str, ylabel: str, small: bool = False) -> None:
    """Worst regret against exhaustive (over the budgets) against the largest compute, one point per method,
    with the goal's region shaded."""
    ax.fill_between([0, 100 * GOAL_COMPUTE], -100, 100 * GOAL_REGRET, color="tab:green", alpha=0.12,
                    label=f"goal: within {GOAL_REGRET:.0%} at <= {GOAL_COMPUTE:.0%} compute")
    ys = []
    for m, s in summary.items():
        if m == "exhaustive":
            continue
        x, y = 100 * s["compute_max"], 100 * s["worst_regret_vs_exhaustive"]
        ys.append(y)
        ax.scatter([x], [y], s=30 if small else 40)
        ax.annotate(m, (x, y), textcoords="offset points", xytext=(4, 2) if small else (5, 3),
                    fontsize=6 if small else 7)
    ax.axhline(100 * GOAL_REGRET, color="gray", linestyle="--", linewidth=1)
    ax.axvline(100 * GOAL_COMPUTE, color="gray", linestyle=":", linewidth=1)
    ax.set_ylim(min(-0.5, min(ys, default=0) - 0.5), max(ys, default=1) + 1)
    ax.set_xlim(0, None)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8 if small else None)
    ax.set_ylabel(ylabel, fontsize=8 if small else None)
    ax.grid(alpha=0.3)


def save_figure(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a killed run leaves the previous plot, not half of one
        fig.savefig(tmp, dpi=110, format="png")


def plot(doc: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.2))
    draw_regret_panel(ax, doc["summary"], title, "training compute, % of exhaustive (the largest over the budgets)",
                      "worst regret vs exhaustive, % (over the budgets)")
    ax.legend(loc="upper right", fontsize=8)
    save_figure(fig, path)
    plt.close(fig)


def main() -> None:
    from taskgroup.tasks import PAPER_TASKS, parse_task_list
    from taskgroup.train import CandidateSpec, candidate_set, make_run_config, train_candidates
    from taskgroup.train.rounds import seed_noise_tolerance
    from taskgroup.train.run import parse_seeds
    from taskgroup.train.store import STORE_FILENAME

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--config", type=Path, default=None, help="TOML changing the preset (as `train --config`)")
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/bench-NAME")
    parser.add_argument("--name", default="grouping_quality", help="results file name (benchmarks/results/NAME.*)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--esa", type=float, default=0.2, help="fraction of the schedule for the early snapshot "
                        "(ESA and adaptive rounds); part of the run's config")
    parser.add_argument("--budgets", default="1.25-3", help="SNT range, in steps of 0.25")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--normalize", default="reference", choices=("none", "reference"),
                        help="selection objective, as the pipeline's --normalize (regret is measured in it)")
    parser.add_argument("--executor", default="local", help="where networks train: local | processes:N | ray")
    parser.add_argument("--train-only", action="store_true", help="train (or resume) and stop")
    parser.add_argument("--record", action="store_true",
                        help="also write the preset's estimator quality record, which the pipeline's report quotes "
                             "(taskgroup/data/estimator_quality/PRESET.json; 3+ seeds, budgets covering 1.25-3 SNT)")
    parser.add_argument("--record-from", type=Path, metavar="RESULTS_JSON",
                        help="train nothing: write the preset's estimator quality record from a finished results file")
    args = parser.parse_args()
    if args.record_from:
        write_record(json.loads(args.record_from.read_text()), str(args.record_from))
        return

    config = make_run_config(args.preset, args.config, esa_fraction=args.esa)  # declares the config's own tasks
    tasks, seeds = parse_task_list(args.tasks), parse_seeds(args.seeds)
    config = make_run_config(args.preset, args.config, seed=seeds[0], esa_fraction=args.esa)
    run_dir = args.run_dir or Path("runs") / f"bench-{args.name}"
    start_machine, start = machine(), time.perf_counter()
    specs = candidate_set("all", tasks) + [CandidateSpec(tuple(tasks), 0.5)]  # + the base model's half-width network
    common = dict(seeds=seeds, progress=PrintProgress(), executor=args.executor)
    table = train_candidates(run_dir, tasks, specs, config, resume=(run_dir / STORE_FILENAME).exists(), **common)
    # The all-task network again with affinity tracking (its weights and losses do not change).
    table = train_candidates(run_dir, tasks, [], config, resume=True, affinity=True, **common)
    if args.train_only:
        return
    exhaustive = exhaustive_table(table, tasks)
    scales = None
    if args.normalize == "reference":
        scales = {split: {t: table.reference_losses[t][split] for t in tasks} for split in ("val", "test")}
    # The seed noise of one seed's grouping objective, from the run's seeds (adaptive rounds' tolerance).
    tolerance = seed_noise_tolerance(exhaustive, scales and scales["val"]) * math.sqrt(len(seeds))
    per_seed = {}
    for seed in seeds:
        t = exhaustive.for_seed(seed)
        wall = {(frozenset(n.tasks), n.width, n.stage): n.wall_time_s for n in table.for_seed(seed).networks}
        setting = Setting(t, wall, scales, tolerance, base_table=table.for_seed(seed))
        per_seed[seed] = Evaluator(setting, parse_range(args.budgets), args.top_k, seed).run()
    meta = {"kind": "benchmark_grouping_quality", "schema_version": 2, "machine": start_machine,
            "run_config": config.to_dict(), "tasks": list(tasks), "objective": args.normalize,
            "tolerance_one_seed": tolerance, "wall_s_this_invocation": round(time.perf_counter() - start, 1)}
    doc = summarize(per_seed, list(seeds), parse_range(args.budgets), meta)
    RESULTS.mkdir(exist_ok=True)
    rc = doc["run_config"]
    title = f"Grouping quality against every subset trained (built-in scenes, {rc['preset']} preset, {args.name})"
    header = [f"Machine: {machine_line(doc['machine'])}",
              f"Tasks: {', '.join(tasks)}. Recipe: {rc['train']['epochs']} epochs, {rc['train']['lr_schedule']} LR from "
              f"{rc['train']['lr']}, batch {rc['train']['batch_size']}, {rc['data'].get('n_train')} training views, "
              f"architecture {json.dumps(rc['arch'])}; early snapshot at {rc['esa_fraction']:g} of the schedule. "
              f"Seeds {', '.join(map(str, seeds))}. Exhaustive training per seed: "
              + ", ".join(f"{v:.0f} s" for v in doc["exhaustive_train_s"].values()) + ".",
              f"Objective: {args.normalize}. Adaptive rounds' tolerance (one seed's grouping noise, measured on these "
              f"seeds): {tolerance:.4g}."]
    write_bytes_atomic(RESULTS / f"{args.name}.json", (json.dumps(doc, indent=1, default=str) + "\n").encode())
    write_bytes_atomic(RESULTS / f"{args.name}.md", (markdown(doc, title, header) + "\n").encode())
    plot(doc, RESULTS / f"{args.name}.png", title)
    if args.record:
        write_record(doc, f"benchmarks/results/{args.name}.json")
    print(markdown(doc, title, header))


def write_record(doc: dict, source: str) -> None:
    """The preset's estimator quality record (taskgroup/data/estimator_quality/PRESET.json), which the
    pipeline's report quotes beside its choice, when the run is a preset as shipped."""
    from taskgroup.estimatorquality import RECORDS, EstimatorQuality, MethodQuality
    from taskgroup.fileio import write_json_atomic
    from taskgroup.train.recipes import shipped_preset

    preset = shipped_preset(doc["run_config"])
    if preset is None:
        print("no estimator quality record: the run is not a preset as shipped")
        return
    budgets = doc["budgets_snt"]
    if len(doc["seeds"]) < 3 or min(budgets) > 1.25 or max(budgets) < 3:
        print("no estimator quality record: the shipped one is measured over 3+ seeds and budgets 1.25-3 SNT")
        return
    m = doc["machine"]
    # Named after the preset whose recipe it measured, whatever the run called it (as seed-noise records).
    run_config = {**doc["run_config"], "preset": preset}
    record = EstimatorQuality(
        preset, f"{source}, {m.get('cpu')} {m.get('cores')} cores, {m.get('date')}", tuple(doc["tasks"]),
        len(doc["seeds"]), f"{min(budgets):g}-{max(budgets):g}", doc["objective"], run_config,
        {name: MethodQuality(name, 100 * s["worst_regret_vs_exhaustive"], 100 * s["compute_max"])
         for name, s in doc["summary"].items() if s.get("worst_regret_vs_exhaustive") is not None})
    RECORDS.mkdir(parents=True, exist_ok=True)
    write_json_atomic(RECORDS / f"{preset}.json", record.to_json())
    print(f"wrote the estimator quality record {RECORDS / f'{preset}.json'}")


if __name__ == "__main__":
    main()
