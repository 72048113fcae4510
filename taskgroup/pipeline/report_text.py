"""The report's Markdown: the chosen grouping, the stakes, the baselines and how far each can be told
apart from the choice, pairwise relationships or affinity, latency, compute and notes, and the
sentences on the within-noise rule's decisions and the choice's robustness to latency noise.

Every statement is judged here against the run's seeds or the preset's measured seed noise, so the
words ("LOWER", "indistinguishable") and the numbers beside them come from one place.
"""

from __future__ import annotations

import math
from typing import Any

from taskgroup.grouping import Grouping, same_networks
from taskgroup.grouping_records import NoiseComparison, ParsimonyRecord
from taskgroup.pipeline.report_model import GroupingResult, ReportData
from taskgroup.search.robustness import robustness_sentence
from taskgroup.search.stakes import Side, measure
from taskgroup.stats import CONFIDENCE, Comparison, compare, compare_with_noise, confidence_words, estimate, within_noise


def comparison_notes(data: ReportData) -> list[str]:
    """Plain statements of how the chosen grouping compares with each baseline.

    With several seeds a baseline is called lower or higher than the choice only when the paired
    difference over seeds is beyond Student's t (seeds - 1 degrees of freedom) times its standard
    error at 95% confidence (two-sided); otherwise the two are indistinguishable. With one seed the
    difference is judged against the preset's measured spread of such a difference (taskgroup.seednoise):
    the pair's own paired spread when both groupings were measured, else sqrt(2) x one grouping's."""
    notes = []
    chosen = data.chosen.seed_totals(data.test_scales)
    for b in data.baselines:
        if not data.fits(b):
            notes.append(f"'{b.name}' does not fit the budget ({b.cost:.4g} > {data.budget:.4g} {data.budget_unit}); "
                         "shown for reference.")
            continue
        if same_networks(b.networks, data.chosen.networks):
            notes.append(f"'{b.name}' is the chosen grouping.")
            continue
        diff = data.score(b) - data.score(data.chosen)
        theirs = b.seed_totals(data.test_scales)
        if data.several_seeds and len(set(chosen) & set(theirs)) > 1:
            c = compare(theirs, chosen)
            if c.verdict == "indistinguishable":
                notes.append(f"'{b.name}' and the chosen grouping are indistinguishable: {data.score_name} difference "
                             f"{c.text(5)}.")
            else:
                word = "LOWER" if c.verdict == "lower" else "higher"
                notes.append(f"'{b.name}' has a {word} {data.score_name} than the chosen grouping: difference "
                             f"{c.text(5)}." + (_approximation_note() if c.verdict == "lower" else ""))
            continue
        c = one_seed_comparison(data, b, diff)
        if c is not None and c.verdict == "indistinguishable":
            notes.append(f"'{b.name}' differs from the chosen grouping by {diff:+.5f}, which one seed cannot tell apart "
                         f"from seed-to-seed noise ({c.rule_text(5)}); run with --seeds to decide.")
        elif diff < -1e-12:
            notes.append(f"'{b.name}' fits the budget and has a LOWER {data.score_name} than the chosen grouping "
                         f"({data.score(b):.5f} vs {data.score(data.chosen):.5f}; one seed"
                         + (f"; beyond the noise: {c.rule_text(5)})." if c is not None else ").")
                         + _approximation_note())
        else:
            notes.append(f"'{b.name}' has a higher {data.score_name} than the chosen grouping "
                         f"({data.score(b):.5f} vs {data.score(data.chosen):.5f}; one seed"
                         + (f"; beyond the noise: {c.rule_text(5)})." if c is not None else ")."))
    return notes


def stakes_of(d: ReportData):
    """How much grouping matters at the budget (taskgroup.search.stakes): the chosen grouping against the
    'one network' and 'independent singles' baselines on the test split, paired over seeds where the run
    has several, else against the preset's measured seed noise, else unknown."""

    def side(r: GroupingResult, name: str) -> Side:
        per_seed = r.seed_totals(d.test_scales) if d.several_seeds else {}
        return Side(name, tuple(_networks(r)), d.score(r), r.cost, d.fits(r), per_seed, not r.measured)

    by_name = {b.name: b for b in d.baselines}
    one, singles = by_name.get("one network"), by_name.get("independent singles")
    return measure(side(d.chosen, "the chosen grouping"), None if one is None else side(one, "one network"),
                   None if singles is None or not d.fits(singles) else side(singles, "independent singles"),
                   "test", d.seed_noise, _objective(d), max(1, len(d.seeds)))


def stakes_section(d: ReportData) -> list[str]:
    st = stakes_of(d)
    lines = ["## Stakes: how much grouping matters here", "",
             f"The chosen grouping against the groupings that need no search, on the test split, in % of one "
             f"network's {d.score_name}.", "", f"**{st.conclusion()}**", ""]
    return lines + [f"- {line[:1].upper()}{line[1:]}" + ("" if line.endswith(".") else ".") for line in st.lines()[1:]]


def _approximation_note() -> str:
    return (" Selection optimises the validation losses of the candidates (with untrained networks estimated "
            "when an estimator such as HOA or TAG is on); this gap is the price of that approximation and of "
            "validation/test differences.")


def _objective(d: ReportData) -> str | None:
    """The seed-noise record's objective for what the report ranks by (None: not measured)."""
    if d.seed_noise is None:
        return None
    if d.test_scales is None:
        return "none"
    return "reference" if d.objective == "reference" else None


def one_seed_comparison(d: ReportData, other: GroupingResult, diff: float) -> Comparison | None:
    """A one-seed difference `diff` (other - chosen) judged against the preset's measured spread of it:
    the paired spread of the two groupings where both were measured, else sqrt(2) x one grouping's (two
    groupings trained independently). None where the configuration's noise was not measured."""
    objective = _objective(d)
    if objective is None:
        return None
    mine, theirs = _networks(d.chosen), _networks(other)
    measured = d.seed_noise.measured(mine) is not None and d.seed_noise.measured(theirs) is not None
    spread = d.seed_noise.pair(objective, mine, theirs) if measured else d.seed_noise.independent(objective)
    return compare_with_noise(diff, spread.std, spread.df, spread.text)


def _networks(result: GroupingResult) -> list[tuple]:
    return [(n.tasks, n.width, n.served) for n in result.networks]


def uncertainty_note(d: ReportData) -> str:
    """One sentence on how precise the report's numbers are."""
    level = confidence_words(CONFIDENCE)
    if d.several_seeds:
        return (f"Every network was trained with {len(d.seeds)} seeds ({', '.join(map(str, d.seeds))}); losses are "
                f"means over seeds ± their standard deviation, and a difference (paired by seed) is called only at "
                f"{level}: beyond Student's t with {len(d.seeds) - 1} degrees of freedom times its standard error.")
    objective = _objective(d)
    if objective is None:
        return ("Every network was trained with one seed, and the seed-to-seed noise of this configuration has not "
                "been measured: differences between groupings of a few percent may be luck of the seed; run with "
                "--seeds 0,1,2 to measure it.")
    one, pair = d.seed_noise.one_grouping(objective), d.seed_noise.independent(objective)
    c = compare_with_noise(0.0, pair.std, pair.df, pair.text)
    return (f"Every network was trained with one seed. On this preset one grouping's {d.score_name} moves by "
            f"{one.std:.4f} from seed to seed (standard deviation pooled over {len(d.seed_noise.groupings)} "
            f"groupings, {d.seed_noise.source}); the difference of two groupings trained independently by sqrt(2) "
            f"times that, {pair.std:.4f}, so at {level} differences within ±{c.threshold:.4f} (t with {pair.df} "
            "degrees of freedom) cannot be told apart; two groupings measured together use their own paired spread. "
            "Run with --seeds 0,1,2 for decisions that matter.")


def latency_notes(d: ReportData) -> list[str]:
    """Plain statements about measured latency vs the prediction and the budget."""
    lat = d.latency
    ratio = lat["p50_ms"] / lat["predicted_ms"]
    notes = [f"Measured p50 is {ratio:.2f}x the profile's prediction (the sum of the networks' profiled costs "
             "times the co-run factor the profile measured for that many networks; running networks "
             "concurrently can beat it)."]
    if d.budget_unit == "ms":
        notes.append(f"Against the {d.budget:.4g} ms budget: p50 {lat['p50_ms']:.3f} ms "
                     f"({'within' if lat['p50_ms'] <= d.budget else 'OVER'}), p99 {lat['p99_ms']:.3f} ms "
                     f"({'within' if lat['p99_ms'] <= d.budget else 'OVER'}). Selection budgets the profile's "
                     "p50; `taskgroup select --statistic p99` costs networks at their p99 for a tail-latency budget.")
    if d.budget_unit == "ms" and lat["p50_ms"] > d.budget:
        notes.append(
            f"The measured p50 exceeds the budget by {lat['p50_ms'] / d.budget - 1:.1%}. The profile predicts each "
            "network from its trunk and heads timed separately, plus a fitted co-run factor; the bundle also pays "
            "input conversion and scheduling, and load from other processes moves sub-millisecond timings by "
            "10-20% between runs. Leave headroom in the budget, or select at `--statistic p90`."
        )
    return notes


def markdown(d: ReportData) -> str:
    lines = [
        "# taskgroup report",
        "",
        f"Machine: {d.machine}",
        f"Device profile: {d.device}",
        f"Budget: {d.budget:.4g} {d.budget_unit}",
        "",
        *[line for w in d.warnings for line in (f"> **Warning:** {w}", ">")][:-1],
        *([""] if d.warnings else []),
        uncertainty_note(d),
        "",
        "## Chosen grouping",
        "",
        "Each network is trained on the listed tasks; a task in parentheses is trained as an auxiliary "
        "task only and served by another network (its head is dropped at deployment).",
        "",
        "| network | trained on | serves | width |",
        "|---|---|---|---|",
    ]
    for i, net in enumerate(d.chosen.networks):
        lines.append(f"| {i} | {', '.join(net.tasks)} | {', '.join(net.served)} | {net.width:g} |")
    total = estimate(list(d.chosen.seed_totals().values())) if d.several_seeds else estimate([d.chosen.total])
    lines += [
        "",
        f"Predicted cost {d.chosen.cost:.4g} {d.budget_unit} of {d.budget:.4g} "
        f"({d.budget - d.chosen.cost:.4g} under). Total test loss {total.text(5)}"
        + ("." if d.test_scales is None else f"; normalised test objective {d.score_estimate(d.chosen).text(5)} "
           "(each task's loss divided by " + ", ".join(f"{t} {v:.4g}" for t, v in d.test_scales.items()) + ")."),
        *(["", d.parsimony] if d.parsimony else []),
        *(["", d.robustness] if d.robustness else []),
        "",
        *stakes_section(d),
        "",
        "## Against baselines at the same budget",
        "",
        "All networks below were trained with the same recipe and evaluated on the same test split"
        + (f"; losses are means over {len(d.seeds)} seeds ± standard deviation." if d.several_seeds else "."),
        "",
        "| grouping | networks | cost | fits | total test loss | "
        + ("" if d.test_scales is None else "normalised | ") + " | ".join(d.tasks) + " |",
        "|---|---|---|---|---|" + ("" if d.test_scales is None else "---|") + "---|" * len(d.tasks),
    ]
    for r in [d.chosen] + d.baselines:
        per_task = " | ".join(r.task_estimate(t).short(5) for t in d.tasks)
        plain = estimate(list(r.seed_totals().values())) if d.several_seeds and len(r.seed_totals()) > 1 \
            else estimate([r.total])
        lines.append(f"| {r.name} | {r.describe()} | {r.cost:.4g} | {'yes' if d.fits(r) else 'no'} | "
                     f"{plain.short(5)} | " + ("" if d.test_scales is None else f"{d.score_estimate(r).short(5)} | ")
                     + f"{per_task} |")
    notes = comparison_notes(d)
    lines += ["", *(f"- {n}" for n in notes)] if notes else [
        "", f"- The chosen grouping's {d.score_name} is at least as good as every baseline that fits the budget."]
    lines += ["", "![per-task test losses](task_losses.png)", ""]
    if d.affinity:
        lines += affinity_section(d.affinity)
    else:
        lines += pairwise_section(d)
    lines += ["", "## Time vs loss", "",
              "The exact optimum at every budget where it changes (selection split), with the baselines.", "",
              "![frontier](frontier.png)", "", "## Latency", ""]
    lat = d.latency
    if lat:
        lines += [
            f"Measured bundle p50 {lat['p50_ms']:.3f} ms (p90 {lat['p90_ms']:.3f}, p99 {lat['p99_ms']:.3f}); "
            f"predicted by the profile {lat['predicted_ms']:.3f} ms; budget "
            + (f"{d.budget:.4g} ms." if d.budget_unit == "ms" else f"{d.budget:.4g} SNT."),
            f"Sum of the networks' standalone p50 latencies: {lat['standalone_sum_ms']:.3f} ms "
            f"(bundle / sum = {lat['p50_ms'] / lat['standalone_sum_ms']:.2f}).",
        ]
        lines += ["", *(f"- {n}" for n in latency_notes(d))]
    if d.estimate_errors:
        lines += ["", "## Estimates against the trained networks", "",
                  "Networks the search only estimated, then trained for real before the final choice (validation "
                  "losses; error = estimate / measured - 1).", "",
                  "| network | task | estimated | measured | error |", "|---|---|---|---|---|"]
        lines += [f"| {e['network']} | {e['task']} | {e['estimated']:.5f} | {e['measured']:.5f} | {e['error']:+.1%} |"
                  for e in d.estimate_errors]
    lines += ["", "## Compute", ""]
    c = d.compute
    if c:
        lines.append(
            f"Training the candidates for the search: {c['search_train_s']:.0f} s for {int(c['n_trained'])} networks. "
            f"Training every candidate the search considered ({int(c['n_all'])} networks) would take about "
            f"{c['all_candidates_train_s']:.0f} s at the measured per-network times "
            f"({c['all_candidates_train_s'] / max(c['search_train_s'], 1e-9):.1f}x)."
        )
    if d.notes:
        lines += ["", "## Notes", "", *(f"- {n}" for n in d.notes)]
    return "\n".join(lines) + "\n"


def pairwise_section(d: ReportData) -> list[str]:
    lines = ["## Pairwise relationships", "",
             f"Gain of task (row) from being trained with a partner (column): L(half-size single) / L(pair) - 1 "
             f"on the {d.gains_split} split; positive means the pair predicts the row task better than a "
             "half-size single-task network of the same total cost.", "",
             gains_noise_note(d), "",
             "| task | " + " | ".join(d.tasks) + " |", "|---|" + "---|" * len(d.tasks)]
    for t in d.tasks:
        cells = [("" if p == t or p not in d.pairwise_gains.get(t, {}) else gain_cell(d, t, p)) for p in d.tasks]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return lines + ["", "![pairwise gains](pairwise_gains.png)"]


def affinity_section(a: dict[str, Any]) -> list[str]:
    """The inter-task affinity measured while training the all-task network (no pairs were trained)."""
    tasks = a["tasks"]
    lines = ["## Inter-task affinity", "",
             f"Measured while training the all-task network, every {a['every']} steps (mean over training and over "
             f"seeds {', '.join(map(str, a['seeds']))}); row = source task, column = target task. Lookahead (TAG): "
             "1 - L_target after the optimizer's step on the source task alone / L_target before, on the same "
             "batch; positive means a step on the source lowers the target's loss."]
    titles = {"tag": "Lookahead affinity (x 1000)",
              "tag-nomomentum": "Lookahead affinity without the momentum buffer (x 1000)",
              "cosine": "Gradient cosine similarity"}
    for kind, title in titles.items():
        if kind not in a:
            continue
        scale = 1000.0 if kind != "cosine" else 1.0
        lines += ["", f"{title}:", "", "| source | " + " | ".join(tasks) + " |", "|---|" + "---|" * len(tasks)]
        for t, row in zip(tasks, a[kind]):
            lines.append(f"| {t} | " + " | ".join(f"{scale * v:+.2f}" for v in row) + " |")
    if a.get("calibration"):
        lines += ["", f"Untrained groups were estimated from the {a['estimate']} matrix (docs/select.md): each task's "
                  "single-task loss, scaled by its groupmates' affinity onto it and by the part of the all-task "
                  "network's loss ratio that affinity does not explain (the residual, spread over the number of "
                  "groupmates). Validation split; log ratios:", "",
                  "| task | log(L_all / L_single) | explained by affinity | residual |", "|---|---|---|---|"]
        for t, c in a["calibration"].items():
            lines.append(f"| {t} | {math.log(c['ratio']):+.4f} | {c['explained']:+.4f} | "
                         f"{c['residual']:+.4f} |")
    return lines


def gain_within_noise(d: ReportData, task: str, partner: str) -> bool | None:
    """Whether a pairwise gain cannot be told from zero at 95% confidence: over seeds, a one-sample t
    test (seeds - 1 degrees of freedom); with one seed, against the preset's pooled spread of a gain."""

    per_seed = d.gains_per_seed.get(task, {}).get(partner, {})
    if d.several_seeds and len(per_seed) > 1:
        return within_noise(list(per_seed.values()))
    if d.seed_noise is None:
        return None
    spread = d.seed_noise.gain()
    c = compare_with_noise(d.pairwise_gains[task][partner], spread.std, spread.df, spread.text)
    return c.verdict == "indistinguishable"


def gain_cell(d: ReportData, task: str, partner: str) -> str:
    gain = d.pairwise_gains[task][partner]
    per_seed = list(d.gains_per_seed.get(task, {}).get(partner, {}).values())
    text = f"{gain:+.1%}"
    if d.several_seeds and len(per_seed) > 1:
        text += f" ± {estimate(per_seed).stderr:.1%}"
    return f"({text})" if gain_within_noise(d, task, partner) else text


def gains_noise_note(d: ReportData) -> str:
    level = confidence_words(CONFIDENCE)
    if d.several_seeds:
        return (f"Cells are mean ± standard error over {len(d.seeds)} seeds; a cell in parentheses cannot be told "
                f"from zero at {level} (t with {len(d.seeds) - 1} degrees of freedom): no measurable effect.")
    if d.seed_noise is None:
        return "One seed: the noise of these gains was not measured for this configuration."
    spread = d.seed_noise.gain()
    c = compare_with_noise(0.0, spread.std, spread.df, spread.text)
    return (f"One seed: a cell in parentheses is within ±{c.threshold:.1%} ({level}: t with {spread.df} degrees of "
            f"freedom times {spread.std:.1%}, the seed-to-seed standard deviation of a pairwise gain measured for "
            "this preset) and cannot be told from zero.")


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
