"""How far two seeds' losses are apart, network by network: the yardstick gpu_check.py holds a GPU to.

A network trained on a GPU sums in other orders than on the CPU, so its training drifts apart the
way another seed's does. This trains the candidate pairs of three tasks (full and half singles,
pairs) with seeds 0 and 1 on the CPU and reports |seed 1 - seed 0| / seed 0 for every (network,
task) validation and test loss. Writes benchmarks/results/seed_spread.json: each preset's entry
carries the machine it ran on and the run config it measured; entries of presets not rerun are kept.

    python benchmarks/seed_spread.py [--presets tiny,default] [--tasks segment_semantic,depth_zbuffer,normal]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from _common import machine  # noqa: E402


def spread(rows: list[dict], split: str) -> dict:
    by_net: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_net.setdefault(r["network"], {})[r["seed"]] = r
    rel = [abs(s[1][split][t] - s[0][split][t]) / abs(s[0][split][t]) for s in by_net.values() for t in s[0][split]]
    return {"entries": len(rel), "median": round(statistics.median(rel), 4), "max": round(max(rel), 4),
            "sorted": [round(x, 4) for x in sorted(rel)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,default")
    parser.add_argument("--tasks", default="segment_semantic,depth_zbuffer,normal")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "seed_spread.json")
    args = parser.parse_args()

    from taskgroup.train import candidate_set, make_run_config
    from taskgroup.train.trainer import load_run_data, train_one

    from taskgroup.fileio import write_json_atomic

    tasks = tuple(args.tasks.split(","))
    result = {"kind": "benchmark_seed_spread", "schema_version": 2, "tasks": list(tasks), "seeds": [0, 1],
              "presets": {}}
    if args.out.exists():  # keep the presets this run does not measure again
        earlier = json.loads(args.out.read_text())
        if earlier.get("schema_version") == 2 and earlier.get("tasks") == list(tasks):
            result["presets"] = earlier["presets"]
    for preset in args.presets.split(","):
        config = make_run_config(preset)
        data = load_run_data(config, tasks)
        rows = []
        for spec in candidate_set("pairs", tasks):
            for seed in (0, 1):
                t0 = time.perf_counter()
                r = train_one(spec, dataclasses.replace(config, seed=seed), data)["final"]
                rows.append({"network": spec.name, "seed": seed, "val": r.losses["val"], "test": r.losses["test"],
                             "training_s": round(r.wall_time_s, 1)})
                print(f"{preset} {spec.name} seed {seed}: {time.perf_counter() - t0:.1f} s, val {r.losses['val']}",
                      flush=True)
        result["presets"][preset] = {"machine": machine(), "run_config": config.to_dict(), "val": spread(rows, "val"),
                                     "test": spread(rows, "test"), "rows": rows}
        write_json_atomic(args.out, result)  # after each preset: a long run keeps what it measured
    for preset, r in result["presets"].items():
        print(f"{preset}: val median {r['val']['median']:.2%}, max {r['val']['max']:.2%}; "
              f"test median {r['test']['median']:.2%}, max {r['test']['max']:.2%}")


if __name__ == "__main__":
    main()
