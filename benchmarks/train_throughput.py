"""Training throughput: the trainer vs a bare PyTorch loop on the same model and data.

Both loops run the same full-width two-task network (depth_zbuffer + normal) of a preset on
the same in-memory training split, with the same optimiser, for the same number of steps,
alternating rounds so background load hits both alike. The trainer's number includes
everything it does per step (batch indexing, masked losses, progress callback) but not the
once-per-epoch validation, which the bare loop does not have; validation time is reported
separately. Writes benchmarks/results/train_throughput.json.

    python benchmarks/train_throughput.py [--preset default] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from taskgroup.profile.device import cpu_model

RESULTS = Path(__file__).resolve().parent / "results"




def main() -> None:
    import dataclasses

    import numpy
    import torch

    from taskgroup.train import CandidateSpec, make_run_config
    from taskgroup.train.trainer import build_model, evaluate, load_run_data, train_one

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    tasks = ("depth_zbuffer", "normal")
    spec = CandidateSpec(tasks, 1.0)
    config = make_run_config(args.preset)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=1))
    data = load_run_data(config, tasks)
    tc = config.train
    steps = len(data.train) // tc.batch_size
    images = steps * tc.batch_size
    torch.set_num_threads(tc.torch_threads())
    x_all = data.train.images
    y_all = {t: data.train.targets[t] for t in tasks}

    def bare() -> float:
        torch.manual_seed(0)
        model = build_model(config, spec).train()
        opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
        order = torch.randperm(len(x_all))
        start = time.perf_counter()
        for i in range(steps):
            idx = order[i * tc.batch_size:(i + 1) * tc.batch_size]
            out = model(x_all[idx])
            loss = sum(torch.nn.functional.l1_loss(out[t], y_all[t][idx]) for t in tasks)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    def trainer() -> tuple[float, float]:
        start = time.perf_counter()
        result = train_one(spec, config, data)["final"]
        total = time.perf_counter() - start
        model = build_model(config, spec)
        t0 = time.perf_counter()  # one validation pass plus the final test pass, as train_one does
        evaluate(model, data.val, tasks, tc.eval_batch_size)
        evaluate(model, data.test, tasks, tc.eval_batch_size)
        eval_time = time.perf_counter() - t0
        assert result.steps == steps
        return total - eval_time, eval_time

    bare()  # warm-up
    rounds = []
    for _ in range(args.rounds):
        b = bare()
        t, e = trainer()
        rounds.append({"bare_s": round(b, 3), "trainer_train_s": round(t, 3), "trainer_eval_s": round(e, 3)})
    bare_best = min(r["bare_s"] for r in rounds)
    trainer_best = min(r["trainer_train_s"] for r in rounds)
    doc = {
        "kind": "benchmark_train_throughput", "schema_version": 1,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__, "numpy": numpy.__version__, "torch_threads": tc.torch_threads(),
                    "load_average_at_end": os.getloadavg()},
        "setup": {"preset": args.preset, "tasks": list(tasks), "width": 1.0, "resolution": config.arch.resolution,
                  "batch_size": tc.batch_size, "steps_per_round": steps, "images_per_round": images},
        "rounds": rounds,
        "bare_images_per_s": round(images / bare_best, 1),
        "trainer_images_per_s": round(images / trainer_best, 1),
        "ratio_trainer_over_bare": round(bare_best / trainer_best, 3),
        "note": "best of rounds; trainer time excludes its validation/test passes (reported as trainer_eval_s)",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_throughput.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
