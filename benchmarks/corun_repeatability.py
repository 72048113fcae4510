"""How much the profile's co-run factor moves from one profile to the next on this machine.

Runs `taskgroup profile` several times back to back (the pipeline's default: the paper's five tasks,
the default preset, ONNX Runtime on the CPU, co-run sequences fused as export ships them) and
records each profile's co-run slope (per extra network), the fit's standard error, the spread of
its sequences' own slopes and the standard network's latency. The between-profile standard
deviation of the slope is what a grouping's cost really moves by from run to run; it is the floor of
the co-run uncertainty the search allows for (taskgroup.profile.corun.CORUN_NOISE_FLOOR).

    nice -n 5 python benchmarks/corun_repeatability.py [--runs 7] [--keep DIR] [--losses RUN_DIR]

With --losses (a default-preset run of the paper's five tasks, e.g. a pipeline's `train/`), each
profile also selects at 1.2 SNT as the pipeline does (HOA from the pairs, reference-normalised
validation objective, cost + 2 sigma): the exact optimum, and the cheapest grouping within the
preset's seed noise of it (the pipeline's rule), to show which of the two holds from profile to
profile. The table's losses are fixed (training is deterministic), so only the profile varies.

Results: benchmarks/results/corun_repeatability.{json,md}, with the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine, machine_line

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = "segment_semantic,depth_zbuffer,normal,keypoints2d,edge_texture"


def one_profile(path: Path) -> dict:
    subprocess.run([sys.executable, "-m", "taskgroup", "profile", "--device", "cpu", "--tasks", TASKS,
                    "--out", str(path)], check=True, capture_output=True)
    from taskgroup.profile.corun import corun_fit_errors, corun_standard_error
    from taskgroup.profile.costmodel import profile_from_doc

    doc = json.loads(path.read_text())
    block = doc["corun"]
    slope = block["per_extra_network"]
    fit_se, spread = corun_fit_errors(block, slope)
    slopes = [(r["ratio"] - 1) / (len(r["networks"]) - 1) for r in block["sequences"]]
    profile = profile_from_doc(doc)
    standard = profile.standard_network_ms()
    return {"slope": slope, "fit_standard_error": fit_se, "sequence_slopes": slopes,
            "sequence_spread": spread, "uncertainty_used": corun_standard_error(block, slope),
            "standard_network_ms": standard,
            # parts relative to the standard network (what an SNT budget compares): their run-to-run movement
            "trunk_relative": {str(w): profile.trunk_ms(w) / standard for w in (1.0, 0.5)},
            "load": os.getloadavg()}


def choices(profile_path: Path, losses: Path) -> dict:
    """The pipeline's selection at 1.2 SNT on this profile: exact optimum and within-noise rule."""
    from taskgroup.losstable import LossTable
    from taskgroup.profile.costmodel import profile_from_doc
    from taskgroup.search import candidates_from_table
    from taskgroup.search.normalize import loss_scales
    from taskgroup.search.robustness import robust_select
    from taskgroup.search.withinnoise import WithinNoise
    from taskgroup.seednoise import for_preset

    table = LossTable.load(losses)
    table = LossTable(table.tasks, [n for n in table.networks if len(n.tasks) <= 2], meta=table.meta,
                      reference_losses=table.reference_losses)  # the candidates the search had
    profile = profile_from_doc(json.loads(profile_path.read_text()))
    cands = candidates_from_table(table, "val", "final", cost_fn=profile.cost_fn, estimate="hoa")
    scales = loss_scales("reference", table, [c for c in cands if len(c.tasks) == 1], "val")
    budget = 1.2 * profile.standard_network_ms()
    out = {}
    within = WithinNoise(for_preset("wide"), "reference", max(1, len(table.seed_values())))
    for rule, tolerance in (("optimum", 0.0), ("within_noise", within)):
        sel = robust_select(cands, profile, budget, tasks=table.tasks, scales=scales, relative=True,
                            prefer_cheaper_within=tolerance)
        out[rule] = {"grouping": " + ".join("+".join(LETTERS[t] for t in n.candidate.tasks) + f"@{n.candidate.width:g}"
                                            for n in sel.networks),
                     "objective": sel.objective, "cost_snt": sel.cost / profile.standard_network_ms()}
    return out


LETTERS = {"segment_semantic": "s", "depth_zbuffer": "d", "normal": "n", "keypoints2d": "k", "edge_texture": "e"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="keep the profiles in this directory")
    parser.add_argument("--losses", type=Path, default=None, help="a default-preset run to select on with each profile")
    args = parser.parse_args()
    keep = args.keep or Path(tempfile.mkdtemp(prefix="corun-repeatability-"))
    keep.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.runs):
        path = keep / f"profile-{i}.json"
        rows.append(one_profile(path))
        if args.losses is not None:
            rows[-1]["choices"] = choices(path, args.losses)
        r = rows[-1]
        print(f"profile {i + 1}/{args.runs}: slope {r['slope']:.4f} (fit se {r['fit_standard_error']:.4f}), "
              f"standard network {r['standard_network_ms']:.3f} ms", flush=True)
    slopes = [r["slope"] for r in rows]
    trunk = [r["trunk_relative"]["1.0"] for r in rows]
    summary = {"between_profiles_std": statistics.stdev(slopes), "mean": statistics.mean(slopes),
               "min": min(slopes), "max": max(slopes),
               "fit_standard_error_range": [min(r["fit_standard_error"] for r in rows),
                                            max(r["fit_standard_error"] for r in rows)],
               "trunk_relative_range": [min(trunk), max(trunk)]}
    if args.losses is not None:
        for rule in ("optimum", "within_noise"):
            summary[f"{rule}_groupings"] = sorted({r["choices"][rule]["grouping"] for r in rows})
    m = machine()
    (RESULTS / "corun_repeatability.json").write_text(json.dumps({"machine": m, "runs": rows, "summary": summary,
                                                                  "losses": str(args.losses) if args.losses else None},
                                                                 indent=2) + "\n")
    lines = ["# Co-run factor from profile to profile", "", f"Machine: {machine_line(m)}", "",
             f"{args.runs} profiles back to back (`taskgroup profile --device cpu --tasks {TASKS}`; fused co-run "
             "sequences as export ships them). Slope = the fitted extra cost per additional network; fit se = "
             "its standard error from the sequences' residuals; sequence spread = standard deviation of the "
             "sequences' own slopes; used = the uncertainty selection allows (with the floor); trunk / SNT = the "
             "full-width trunk's cost relative to the standard network.", ""]
    head = "| profile | slope | fit se | sequence spread | used | standard network (ms) | trunk / SNT | load (1 min) |"
    if args.losses is not None:
        head += " optimum (SNT, objective) | within noise (SNT, objective) |"
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    for i, r in enumerate(rows):
        line = (f"| {i + 1} | {r['slope']:.4f} | {r['fit_standard_error']:.4f} | {r['sequence_spread']:.4f} | "
                f"{r['uncertainty_used']:.4f} | {r['standard_network_ms']:.3f} | {r['trunk_relative']['1.0']:.4f} | "
                f"{r['load'][0]:.1f} |")
        if args.losses is not None:
            for rule in ("optimum", "within_noise"):
                c = r["choices"][rule]
                line += f" {c['grouping']} ({c['cost_snt']:.3f}, {c['objective']:.5f}) |"
        lines.append(line)
    lines += ["", f"Between profiles: slope {summary['mean']:.4f} ± {summary['between_profiles_std']:.4f} (mean ± std), "
              f"range {summary['min']:.4f}-{summary['max']:.4f}; each profile's own fit claimed a standard error of "
              f"{summary['fit_standard_error_range'][0]:.4f}-{summary['fit_standard_error_range'][1]:.4f}. The "
              f"full-width trunk relative to the standard network: {summary['trunk_relative_range'][0]:.4f}-"
              f"{summary['trunk_relative_range'][1]:.4f}."]
    if args.losses is not None:
        lines += ["", f"Groupings chosen at 1.2 SNT on the same loss table ({args.losses.name}): exact optimum "
                  f"{len(summary['optimum_groupings'])} distinct ({', '.join(summary['optimum_groupings'])}); "
                  f"cheapest within the seed noise {len(summary['within_noise_groupings'])} distinct "
                  f"({', '.join(summary['within_noise_groupings'])})."]
    (RESULTS / "corun_repeatability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-3:]))


if __name__ == "__main__":
    main()
