"""How much the profile's co-run factor moves from one profile to the next on this machine.

Runs `taskgroup profile` several times back to back (the pipeline's default: the paper's five tasks,
the default preset, ONNX Runtime on the CPU, co-run sequences fused as export ships them) and
records each profile's co-run slope (per extra network), the fit's standard error, the spread of
its sequences' own slopes and the standard network's latency. The between-profile standard
deviation of the slope is what a grouping's cost really moves by from run to run; it is the floor of
the co-run uncertainty the search allows for (taskgroup.profile.costmodel.CORUN_NOISE_FLOOR).

    nice -n 5 python benchmarks/corun_repeatability.py [--runs 7] [--keep DIR]

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
    from taskgroup.profile.costmodel import corun_standard_error, profile_from_doc

    doc = json.loads(path.read_text())
    block = doc["corun"]
    slopes = [(r["ratio"] - 1) / (len(r["networks"]) - 1) for r in block["sequences"]]
    profile = profile_from_doc(doc)
    return {"slope": block["per_extra_network"], "uncertainty": corun_standard_error(block, block["per_extra_network"]),
            "sequence_slopes": slopes, "sequence_spread": statistics.stdev(slopes),
            "standard_network_ms": profile.standard_network_ms(), "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="keep the profiles in this directory")
    args = parser.parse_args()
    keep = args.keep or Path(tempfile.mkdtemp(prefix="corun-repeatability-"))
    keep.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.runs):
        rows.append(one_profile(keep / f"profile-{i}.json"))
        r = rows[-1]
        print(f"profile {i + 1}/{args.runs}: slope {r['slope']:.4f} (uncertainty {r['uncertainty']:.4f}), "
              f"standard network {r['standard_network_ms']:.3f} ms", flush=True)
    slopes = [r["slope"] for r in rows]
    summary = {"between_profiles_std": statistics.stdev(slopes), "mean": statistics.mean(slopes),
               "min": min(slopes), "max": max(slopes),
               "median_fit_or_spread": statistics.median(max(r["sequence_spread"], 0.0) for r in rows)}
    m = machine()
    (RESULTS / "corun_repeatability.json").write_text(json.dumps({"machine": m, "runs": rows, "summary": summary},
                                                                 indent=2) + "\n")
    lines = ["# Co-run factor from profile to profile", "", f"Machine: {machine_line(m)}", "",
             f"{args.runs} profiles back to back (`taskgroup profile --device cpu --tasks {TASKS}`; fused co-run "
             "sequences as export ships them). Slope = the fitted extra cost per additional network; "
             "sequence spread = standard deviation of the sequences' own slopes within one profile.", "",
             "| profile | slope | sequence slopes | sequence spread | uncertainty used | standard network (ms) | load (1 min) |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {i + 1} | {r['slope']:.4f} | {', '.join(f'{v:.4f}' for v in r['sequence_slopes'])} | "
                     f"{r['sequence_spread']:.4f} | {r['uncertainty']:.4f} | {r['standard_network_ms']:.3f} | "
                     f"{r['load'][0]:.1f} |")
    lines += ["", f"Between profiles: slope {summary['mean']:.4f} ± {summary['between_profiles_std']:.4f} (mean ± std), "
              f"range {summary['min']:.4f}-{summary['max']:.4f}; the within-profile spread (median "
              f"{summary['median_fit_or_spread']:.4f}) understates it in some profiles, so the search never "
              "allows less than CORUN_NOISE_FLOOR."]
    (RESULTS / "corun_repeatability.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
