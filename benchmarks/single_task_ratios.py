"""How well each task's single full-width network learns: test loss / trivial-predictor loss.

Trains one full-width single-task network per task (the paper's five by default) on the
`default` preset with the normal training API and writes, per task, the test and validation
losses (in the data's units), the trivial predictor's test loss, their ratio and the training
time to benchmarks/results/single_task_ratios.json. Lower ratios are better; 1.0 is a network
no better than a constant. The committed file also holds the same measurement made before
target standardisation (commit a959a58), for comparison.

    python benchmarks/single_task_ratios.py [--seed 0] [--tasks a,b,c] [--label NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "single_task_ratios.json"


def main() -> None:
    import torch

    from taskgroup.fileio import write_json_atomic
    from taskgroup.profile.device import cpu_model
    from taskgroup.tasks import PAPER_TASKS, parse_task_list
    from taskgroup.train import CandidateSpec, make_run_config
    from taskgroup.train.trainer import load_run_data, train_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default=",".join(PAPER_TASKS))
    parser.add_argument("--label", default="standardised targets")
    args = parser.parse_args()

    tasks = parse_task_list(args.tasks)
    config = make_run_config("default", seed=args.seed)
    data = load_run_data(config, tasks)
    rows = {}
    for task in tasks:
        start = time.perf_counter()
        result = train_one(CandidateSpec((task,), 1.0), config, data)["final"]
        test, trivial = result.losses["test"][task], data.reference[task]["test"]
        rows[task] = {"test": test, "val": result.losses["val"][task], "trivial_test": trivial,
                      "ratio_test": test / trivial, "seconds": round(time.perf_counter() - start, 1)}
        print(f"{task}: test {test:.5f} / trivial {trivial:.5f} = {test / trivial:.3f}", flush=True)
    doc = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {
        "kind": "benchmark_single_task_ratios", "schema_version": 1, "runs": []}
    doc["runs"] = [r for r in doc["runs"] if not (r["label"] == args.label and r["seed"] == args.seed)]
    doc["runs"].append({"label": args.label, "preset": "default", "seed": args.seed, "tasks": rows,
                        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                                    "python": platform.python_version(), "load_average_at_end": os.getloadavg()}})
    write_json_atomic(RESULTS, doc)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
