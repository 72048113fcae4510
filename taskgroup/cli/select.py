"""`taskgroup select`: the exact grouping search from the command line.

It parses its flags into a selection request (`taskgroup.search.workflow`), writes the grouping and
renders it; it never imports PyTorch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from taskgroup.cli.app import app, output_console
from taskgroup.cli.selection_flags import (BUDGET_HELP, BUDGET_MS_HELP, BUDGET_SNT_HELP, SERVED_NOTE, Estimate,
                                           Normalize, OptEstimate, OptEvaluate, OptEvaluateSplit, OptLosses,
                                           OptMaxNetworks, OptNormalize, OptPerTaskStopping, OptProfile, OptSolver,
                                           OptSplit, OptStage, OptStatistic, OptTaskNames, OptWeights, Solver,
                                           Statistic, load, number)
from taskgroup.grouping_records import TopK
from taskgroup.search.robustness import NOISE_SIGMAS
from taskgroup.search.workflow import (Budget, Inputs, SelectionRequest, check_budget_flags, check_top_k,
                                       resolve_budget, select_grouping)
from taskgroup.search.profiled import device_summary
from taskgroup.search.topk import network_list

@app.command("select", short_help="Choose the best grouping within a budget (exact).", help=(
    "Choose the networks to deploy: the set of candidate networks with the lowest total task loss whose total "
    "inference cost fits the budget (exact). " + SERVED_NOTE + " Costs are in SNT units (--budget), or in "
    "milliseconds from a device profile (--profile with --budget-ms or --budget-snt). Writes the grouping JSON "
    "(--out) and prints a summary with the predicted cost and how far under the budget it is."))
def select_cmd(
    losses: Path = OptLosses,
    budget: Optional[float] = typer.Option(None, "--budget", help=BUDGET_HELP),
    profile: Optional[Path] = OptProfile,
    budget_ms: Optional[float] = typer.Option(None, "--budget-ms", help=BUDGET_MS_HELP),
    budget_snt: Optional[float] = typer.Option(None, "--budget-snt", help=BUDGET_SNT_HELP),
    statistic: Statistic = OptStatistic,
    out: Path = typer.Option(Path("best.json"), "--out", help="Grouping JSON to write."),
    estimate: Optional[Estimate] = OptEstimate,
    evaluate: Optional[Path] = OptEvaluate,
    evaluate_split: Optional[str] = OptEvaluateSplit,
    split: str = OptSplit,
    stage: str = OptStage,
    task_names: Optional[str] = OptTaskNames,
    max_networks: Optional[int] = OptMaxNetworks,
    weights: Optional[str] = OptWeights,
    normalize: Normalize = OptNormalize,
    solver: Solver = OptSolver,
    top: int = typer.Option(1, "--top-k", help=(
        "Also list the K best distinct groupings (different sets of networks) under the same objective and budget, "
        "and the estimated networks among them still to train (each once). Training those and selecting again "
        "without --estimate chooses among measured networks only: top-k re-ranking, which corrects estimates that "
        "were wrong near the top. 1 = off.")),
    noise_sigmas: float = typer.Option(NOISE_SIGMAS, "--noise-sigmas", help=(
        "With a profile that stores its latency noise: a grouping fits the budget if its predicted cost plus this "
        "many noise standard deviations does, so a grouping within noise of the budget is left out on every run "
        "instead of in and out by chance (0 = plain predicted cost). The default, sqrt(2) x 1.645 = 2.33, is sized "
        "for the next profile's change (two profiles differ by sqrt(2) sigma): a grouping fitting exactly at the "
        "margin is predicted over the budget by the next profile with a 5% chance, one-sided (2 = 7.9%). The "
        "grouping records its margin and that risk, the budget range over which the choice holds and the optimal "
        "groupings within noise of the budget.")),
    per_task_stopping: bool = OptPerTaskStopping,
) -> None:
    check_budget_flags(profile, budget, budget_ms, budget_snt)
    check_top_k(top)
    inp = load(losses, split, stage, estimate, evaluate, evaluate_split, task_names, weights, normalize, profile,
                statistic.value, per_task_stopping)
    limit = resolve_budget(inp.standard_ms, budget, budget_ms, budget_snt)
    request = SelectionRequest.from_inputs(inp, limit, out, max_networks=max_networks, solver=solver.value,
                                           noise_sigmas=noise_sigmas, top_k=top, options=inp.options)
    result = select_grouping(request)
    result.grouping.save(out)
    inp.profile = result.profile  # as the choice used it: noise relative to the standard network for SNT budgets
    _print_selection(result.selection, result.seconds, out, limit, inp)
    _print_stakes(result.stakes)
    from rich.console import Console
    from rich.markup import escape

    excluded = result.excluded
    if excluded is not None:
        Console(stderr=True).print(escape(
            f"note: the noise rule, not the prediction, decided: {' + '.join(excluded.networks)} (objective "
            f"{excluded.objective:.5g}, better) is predicted at {excluded.cost_ms:.4g} ms, within the "
            f"{limit.value:.4g} ms budget, but not with {excluded.sigmas:g} sigma of latency noise (sigma "
            f"{excluded.noise_ms:.3g} ms: {excluded.fit_cost_ms:.4g} ms), so it was left out; `frontier` lists "
            f"it as optimal from {excluded.cost_ms:.4g} ms. --noise-sigmas 0 selects on the prediction alone "
            "(it may then exceed the budget when the latency moves within its noise)."))
    if top > 1:
        _print_top_k(result.grouping.top_k, inp)
    for w in result.warnings:
        Console(stderr=True).print(f"[bold yellow]warning:[/] {escape(w.message())}")


def _print_stakes(stakes) -> None:
    from rich.markup import escape

    console = output_console()
    console.print(escape(f"stakes ({stakes.split} split, % of one network's objective): {stakes.conclusion()}"))
    for line in stakes.lines()[1:]:
        console.print(escape(f"  {line}"))


def _net_label(c) -> str:
    return "+".join(c.tasks) + (" (est.)" if c.estimated else "")


def _headroom_text(cost: float, budget: float, unit: str) -> str:
    """'0.287 ms of 0.312 ms budget (0.025 ms, 8.0% under)'.

    The share is spare / budget, never 100 x spare first: for a huge budget (--budget 1e308) that
    product overflows to infinity.
    """
    digits = 4 if unit == "ms" else 6
    spare = budget - cost
    pct = 100.0 * (spare / budget) if budget > 0 else 0.0
    return (f"{cost:.{digits}g} {unit} of {budget:.{digits}g} {unit} budget "
            f"({max(spare, 0.0):.{digits}g} {unit}, {max(pct, 0.0):.1f}% under)")


def _print_selection(sel, seconds: float, out: Path, limit: Budget, inp: Inputs) -> None:
    from rich.table import Table


    unit = sel.unit
    title = f"Grouping within {number(sel.budget, unit)} {unit}"
    if limit.snt is not None:
        title += f" ({limit.snt:g} SNT)"
    table = Table(title=title, show_lines=False)
    for col in ("#", "trained on", "serves", "width", f"cost ({unit})", "loss (selection)"):
        right = col in ("#", "width") or col.startswith("cost")
        table.add_column(col, justify="right" if right else "left", overflow="fold")  # wrap names, never cut
    if sel.evaluation is not None:
        table.add_column(f"loss ({sel.evaluation.split})")
    for k, n in enumerate(sel.networks):
        row = [str(k), _net_label(n.candidate), ", ".join(n.served), f"{n.candidate.width:g}", number(n.cost, unit),
               ", ".join(f"{n.candidate.losses[t]:.5g}" for t in n.served)]
        if sel.evaluation is not None:
            row.append(", ".join(f"{sel.evaluation.losses[t]:.5g}" for t in n.served))
        table.add_row(*row)
    console = output_console()
    console.print(table)
    console.print(f"objective {sel.objective:.6g} (total loss {sel.total_loss:.6g}); {sel.candidates_searched:,} of "
                  f"{sel.candidates_total:,} candidates after pruning dominated ones; solved by {sel.solver} in "
                  f"{seconds:.3f} s")
    if sel.search is not None:
        console.print(_optimality_text(sel))
    if inp.profile is not None:
        console.print(f"predicted {_headroom_text(sel.cost, sel.budget, 'ms')} on {device_summary(inp.profile)}; "
                      f"standard network {inp.standard_ms:.4g} ms")
        if sel.corun_factor != 1:
            console.print(f"  = networks alone {sel.networks_cost:.4g} ms x {sel.corun_factor:.3f} for running "
                          f"{len(sel.networks)} networks back to back (measured in the profile)")
        if sel.robustness is not None:
            console.print(f"robustness: {sel.robustness.sentence}")
            for g in sel.robustness.near_budget:
                console.print(f"  within noise of the budget: {' + '.join(g.networks)}: {g.cost_ms:.4g} ms "
                              f"+- {g.noise_ms:.2g} (objective {g.objective:.6g})")
    else:
        console.print(f"cost {_headroom_text(sel.cost, sel.budget, 'snt')}")
    if sel.evaluation is not None:
        console.print(f"evaluated on {sel.evaluation.split}: total {sel.evaluation.total:.6g} "
                      f"(best chosen network per task: {sel.evaluation.total_best_served:.6g})")
    console.print(f"wrote {out}")


def _optimality_text(sel) -> str:
    """'optimality gap 0 (proven optimal; ...)' or the gap and the proven lower bound."""
    how = (f"column generation: {sel.search.get('rounds', 0)} pricing rounds, {sel.search.get('columns_generated', 0):,} "
           f"columns generated, {sel.search.get('finish_columns', 0)} read by the exact finish")
    if sel.gap == 0:
        return f"optimality gap 0 (proven optimal; {how})"
    record = sel.optimality_record()
    return (f"optimality gap {sel.gap:.6g} ({100 * record.relative_gap:.3g}%): no grouping scores below "
            f"{record.lower_bound:.6g} ({how})")


def _print_top_k(doc: TopK, inp: Inputs) -> None:
    """The k best groupings and the command that trains their estimated networks."""
    from rich.table import Table

    noise = doc.top_k_noise
    table = Table(title=f"The {len(doc.top_k)} best distinct groupings")
    columns = ("#", "networks (serves)", "objective", "cost") + (("minus best: within noise?",) if noise else ())
    for col in columns:
        table.add_column(col, justify="right" if col in ("#", "objective", "cost") else "left", overflow="fold")
    for k, g in enumerate(doc.top_k):
        nets = " + ".join("+".join(n.tasks) + f"@{n.width:g}" + ("~est" if n.estimated else "")
                          + ("" if n.served == n.tasks else f" ({','.join(n.served)})") for n in g.networks)
        row = [str(k), nets, f"{g.objective:.6g}", f"{g.cost:.4g}"]
        if noise:
            c = g.within_noise_of_best
            row.append("" if c is None else f"{c.minus_optimum:+.4g}: {'within' if c.within else 'beyond'} "
                                            f"{c.tolerance:.3g} ({c.spread.basis})")
        table.add_row(*row)
    console = output_console()
    console.print(table)
    if noise:
        console.print(f"within noise = within one standard error of the paired difference from the best: the paired "
                      f"seed-to-seed spread over sqrt({noise.run_seeds}) seed(s), measured for both groupings "
                      f"('paired') or the conservative bound ('bound'); from {noise.source}.")
    if doc.to_train:
        nets = network_list([(n.tasks, n.width) for n in doc.to_train])
        console.print(f"{len(doc.to_train)} estimated network(s) to train, then select again without --estimate:")
        console.print(f"  taskgroup train --out {inp.table_dir} --resume --networks '{nets}'")
    else:
        console.print("every network of these groupings is trained: the choice above is among measured networks")
