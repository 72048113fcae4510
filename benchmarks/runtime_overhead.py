"""Runtime overhead: the bundle's per-frame latency vs running the same networks yourself.

Exports a grouping of default-preset networks (untrained weights: latency does not depend
on the values), then measures, interleaved round by round so background load hits all
three alike:
  - runtime:    Bundle.run(frame) (uint8 HWC pre-processing included)
  - standalone: each network in its own ONNX Runtime session with library defaults, timed
                alone; the comparison uses the sum of their p50s (target: runtime <= 1.05x)
  - torch:      PyTorch eager, the same networks one after another (torch.no_grad)
Writes benchmarks/results/runtime_overhead.json with the machine description.

    python benchmarks/runtime_overhead.py [--preset default] [--rounds 300]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import os

# PyTorch's OpenMP workers busy-wait after each op by default; in one process that
# interleaves torch with ONNX Runtime, they steal the cores from the next measurement
# (measured here: the runtime 10x slower right after a torch call). Passive waiting keeps
# the three measurements independent. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Three networks as `select` might choose them: a pair with an auxiliary head, a single, a half-size single.
NETWORKS = (
    {"tasks": ["segment_semantic", "depth_zbuffer", "normal"], "served": ["segment_semantic", "depth_zbuffer"], "width": 1.0},
    {"tasks": ["normal"], "served": ["normal"], "width": 1.0},
    {"tasks": ["edge_texture", "keypoints2d"], "served": ["edge_texture", "keypoints2d"], "width": 0.5},
)


def machine() -> dict:
    import onnxruntime
    import torch

    from taskgroup.profile.device import cpu_model
    from runtime.bundle import cpu_cores

    return {"cpu": cpu_model(), "cores": cpu_cores(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "load_average_1_5_15min": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def write_grouping(root: Path, preset: str) -> Path:
    import torch

    from runtime.manifest import sha256_file
    from taskgroup.models import create_model, save_checkpoint
    from taskgroup.presets import get_arch_preset

    p = get_arch_preset(preset)
    nets, served_by = [], {}
    for i, net in enumerate(NETWORKS):
        torch.manual_seed(i)
        save_checkpoint(create_model(p.model, net["tasks"], net["width"], **p.model_config).eval(), root / f"net{i}.pt")
        nets.append({**net, "stage": "final", "checkpoint": f"net{i}.pt", "cost": None,
                     "checkpoint_sha256": sha256_file(root / f"net{i}.pt")})  # vouched for: written just now
        served_by.update({t: i for t in net["served"]})
    path = root / "best.json"
    path.write_text(json.dumps({"kind": "grouping", "schema_version": 1, "tasks": list(served_by),
                                "budget": {"value": None, "unit": "snt"}, "networks": nets,
                                "served_by": served_by, "objective": None}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "runtime_overhead.json")
    args = parser.parse_args()

    import torch

    from exporters import export_bundle
    from runtime import load_bundle
    from runtime.timing import TimingConfig, measure
    from runtime.preprocess import to_network_input
    from taskgroup.models import load_checkpoint
    from taskgroup.presets import get_arch_preset

    res = get_arch_preset(args.preset).resolution
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grouping = write_grouping(root, args.preset)
        bundle_dir = export_bundle(grouping, root / "deploy", resolution=res)
        bundle = load_bundle(bundle_dir)
        standalone = bundle.standalone_runners()
        for r in standalone:
            r.activate()
        models = [load_checkpoint(root / f"net{i}.pt").with_heads(n["served"]).eval() for i, n in enumerate(NETWORKS)]
        frame = bundle.example_frame()
        x = to_network_input(frame, bundle.input)
        xt = torch.from_numpy(x)
        feed = {bundle.input.name: x}

        def t_torch() -> None:
            with torch.no_grad():
                for m in models:
                    m(xt)

        calls = {"runtime": lambda: bundle.run(frame), **{r.name: (lambda r=r: r.infer(feed, False)) for r in standalone},
                 "torch": t_torch}
        # One call of each per round (interleaved), 20 warm-up calls each.
        timed = measure(calls, TimingConfig(warmup_runs=20, min_runs=args.rounds, min_seconds=0.0, rounds=args.rounds,
                                            max_runs=args.rounds))
        stats = {k: t.summary() for k, t in timed.items()}
        alone_sum = sum(stats[r.name]["p50_ms"] for r in standalone)
        result = {
            "kind": "benchmark_runtime_overhead", "schema_version": 1,
            "machine": machine(), "preset": args.preset, "resolution": res, "rounds": args.rounds,
            "networks": [{"name": f"net{i}", **n} for i, n in enumerate(NETWORKS)],
            "runtime_execution": bundle.execution, "runtime_load_report": bundle.load_report,
            "latency": stats,
            "standalone_p50_sum_ms": alone_sum,
            "runtime_over_standalone_sum": stats["runtime"]["p50_ms"] / alone_sum,
            "torch_over_runtime": stats["torch"]["p50_ms"] / stats["runtime"]["p50_ms"],
            "note": "interleaved rounds; runtime includes uint8 HWC -> float32 NCHW pre-processing",
        }
        bundle.close()
        for r in standalone:
            r.deactivate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"runtime p50 {stats['runtime']['p50_ms']:.3f} ms ({bundle.execution}); standalone sum "
          f"{alone_sum:.3f} ms -> {result['runtime_over_standalone_sum']:.3f}x; torch eager "
          f"{stats['torch']['p50_ms']:.3f} ms. Wrote {args.out}")


if __name__ == "__main__":
    main()
