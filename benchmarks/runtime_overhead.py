"""Runtime overhead: the bundle's per-frame latency vs running the same networks yourself, fused or not.

Exports a grouping of default-preset networks (untrained weights: latency does not depend
on the values) twice, as separate models and fused into one graph (`export --fuse`), with
the thread setting the default profile records (one intra-op thread per session), then
measures side by side, interleaved round by round (`taskgroup_runtime.timing.measure`, one call of
each per round) so that background load hits all of them alike:
  - fused:                Bundle.run(frame) of the fused bundle: one session per frame, the
                          uint8 -> float conversion inside the graph
  - separate_sequential:  Bundle.run(frame) of the separate bundle, networks one after another
  - separate_concurrent:  the same, networks on a thread pool (one thread each)
  - net0, net1, ...:      each network in its own session, alone (float input ready)
  - torch:                PyTorch eager, the same networks one after another (torch.no_grad),
                          timed on its own afterwards (its threads would slow whatever runs next)
and reports each bundle's p50 over the sum of the standalone p50s (the goal: at most 1.0).
The whole measurement is repeated (`--repeats`) on the shared machine; each repeat is kept.
Writes benchmarks/results/runtime_overhead.json with the machine description.

    python benchmarks/runtime_overhead.py [--preset default] [--rounds 300] [--repeats 3]
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
    from taskgroup_runtime.bundle import cpu_cores

    return {"cpu": cpu_model(), "cores": cpu_cores(), "python": platform.python_version(),
            "numpy": np.__version__, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "load_average_1_5_15min": list(os.getloadavg()),
            "torch_threads": torch.get_num_threads(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def write_grouping(root: Path, preset: str) -> Path:
    import torch

    from taskgroup_runtime.integrity import sha256_file
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
    # As the default profile measures: one intra-op thread per session (the bundle then runs the same way).
    path.write_text(json.dumps({"kind": "grouping", "schema_version": 1, "tasks": list(served_by),
                                "budget": {"value": None, "unit": "snt",
                                           "backend_settings": {"intra_op_num_threads": 1}},
                                "networks": nets, "served_by": served_by, "objective": None}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=300, help="timed calls of each, one per round")
    parser.add_argument("--repeats", type=int, default=3, help="independent repeats of the whole measurement")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "runtime_overhead.json")
    args = parser.parse_args()

    import torch

    from taskgroup_exporters import export_bundle
    from taskgroup_runtime import load_bundle
    from taskgroup_runtime.preprocess import to_network_input
    from taskgroup_runtime.timing import TimingConfig, measure
    from taskgroup.models import load_checkpoint
    from taskgroup.presets import get_arch_preset

    res = get_arch_preset(args.preset).resolution
    start_machine = machine()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        grouping = write_grouping(root, args.preset)
        separate_dir = export_bundle(grouping, root / "separate", resolution=res, fuse=False)
        fused_dir = export_bundle(grouping, root / "fused", resolution=res, fuse=True)
        bundles = {"fused": load_bundle(fused_dir),
                   "separate_sequential": load_bundle(separate_dir, execution="sequential"),
                   "separate_concurrent": load_bundle(separate_dir, execution="concurrent")}
        separate = bundles["separate_sequential"]
        standalone = separate.standalone_runners()
        for r in standalone:
            r.activate()
        models = [load_checkpoint(root / f"net{i}.pt").with_heads(n["served"]).eval() for i, n in enumerate(NETWORKS)]
        frame = separate.example_frame()
        x = to_network_input(frame, separate.input)
        xt = torch.from_numpy(x)
        feed = {separate.input.name: x}

        def t_torch() -> None:
            with torch.no_grad():
                for m in models:
                    m(xt)

        calls = {**{name: (lambda b=b: b.run(frame)) for name, b in bundles.items()},
                 **{r.name: (lambda r=r: r.infer(feed, False)) for r in standalone}}
        repeats = []
        for rep in range(args.repeats):
            timed = measure(calls, TimingConfig(warmup_runs=20, min_runs=args.rounds, min_seconds=0.0,
                                                rounds=args.rounds, max_runs=args.rounds))
            stats = {k: t.summary() for k, t in timed.items()}
            alone_sum = sum(stats[r.name]["p50_ms"] for r in standalone)
            ratios = {name: stats[name]["p50_ms"] / alone_sum for name in bundles}
            repeats.append({"latency": stats, "standalone_p50_sum_ms": alone_sum, "over_standalone_sum": ratios,
                            "load_average_1_5_15min": list(os.getloadavg())})
            print(f"repeat {rep + 1}: standalone sum {alone_sum:.3f} ms; " + ", ".join(
                f"{name} {stats[name]['p50_ms']:.3f} ms ({ratios[name]:.3f}x)" for name in bundles), flush=True)
        # PyTorch's threads stay busy after each call and slow whatever runs next: timed on its own, afterwards.
        torch_stats = measure({"torch": t_torch}, TimingConfig(warmup_runs=5, min_runs=min(args.rounds, 100),
                                                               min_seconds=0.0))["torch"].summary()
        medians = {name: float(np.median([r["over_standalone_sum"][name] for r in repeats])) for name in bundles}
        result = {
            "kind": "benchmark_runtime_overhead", "schema_version": 2,
            "machine": start_machine, "load_average_at_end": list(os.getloadavg()),
            "preset": args.preset, "resolution": res, "rounds": args.rounds, "repeats": repeats,
            "networks": [{"name": f"net{i}", **n} for i, n in enumerate(NETWORKS)],
            "threads_per_session": 1,
            "load_reports": {name: b.load_report for name, b in bundles.items()},
            "median_over_standalone_sum": medians,
            "torch_eager": torch_stats,
            "faster": min(medians, key=medians.get),
            "note": "p50 of Bundle.run (uint8 HWC frame, pre-processing included) over the sum of each network's "
                    "p50 alone (float input ready, own session); all interleaved, one call of each per round",
        }
        for b in bundles.values():
            b.close()
        for r in standalone:
            r.deactivate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("median over the standalone sum: " + ", ".join(f"{k} {v:.3f}x" for k, v in medians.items())
          + f". Wrote {args.out}")


if __name__ == "__main__":
    main()
