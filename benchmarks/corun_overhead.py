"""Co-run overhead: networks run back to back cost more than the sum of each timed alone.

The profile (and so `select`) predicts a grouping's latency as the sum of its networks'
latencies, each measured in blocks of repeated calls. A deployed bundle runs several
networks per frame, so each starts with caches holding the others' weights. This
benchmark measures, side by side in one run on ONNX Runtime (CPU, 1 intra-op thread, as
profiled), each network alone and sequences of 2 to 5 of them called back to back, in
two timing orders:

  - block:       each callable timed in blocks of repeated calls (the profiler's order);
  - round-robin: every callable called once per round, in turn.

and reports, per sequence, sequence p50 / sum of member p50s. Results go to
benchmarks/results/corun_overhead.json with the machine description.

    python benchmarks/corun_overhead.py [--preset default] [--runs 400]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAPER = ("segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture")
# Networks as selection might choose them (width, served heads).
NETWORKS = {
    "A": (1.0, PAPER[:4]),
    "B": (0.5, ("keypoints2d",)),
    "C": (0.5, ("edge_texture",)),
    "D": (1.0, ("edge_texture",)),
    "E": (0.5, PAPER),
}
SEQUENCES = ("BC", "AB", "DE", "AD", "ABC", "ABCD", "ABCDE")


def build_runners(preset: str):
    """The networks' runners, as the profiler builds them (ONNX Runtime CPU, 1 intra-op thread)."""
    import torch

    from taskgroup_runtime.device import DeviceSpec
    from taskgroup.models import create_model
    from taskgroup.presets import get_arch_preset
    from taskgroup.profile import onnxgraphs
    from taskgroup.profile.pieces import PieceRunners

    p = get_arch_preset(preset)
    pieces = PieceRunners("onnxruntime", DeviceSpec("cpu"), threads=1)
    image = torch.rand(1, 3, p.resolution, p.resolution, generator=torch.Generator().manual_seed(0))
    for name, (width, served) in NETWORKS.items():
        torch.manual_seed(0)
        model = create_model(p.model, PAPER, width, **p.model_config).eval()
        pieces.add_graph(name, onnxgraphs.export_network(model, image).network(served), {onnxgraphs.IMAGE: image.numpy()})
    return pieces


def sequence(fns):
    def run():
        for fn in fns:
            fn()
    return run


def p50s(callables: dict, runs: int, rounds: int) -> dict[str, float]:
    """Median ms per call with the toolkit's timing: `runs` calls each, split over `rounds` interleaved rounds
    (8 rounds: blocks of repeated calls, the profiler's order; `runs` rounds: one call each per round)."""
    from taskgroup_runtime.timing import TimingConfig, measure

    timed = measure(callables, TimingConfig(warmup_runs=10, min_runs=runs, min_seconds=0.0, rounds=rounds, max_runs=runs))
    return {k: t.p50_ms for k, t in timed.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--runs", type=int, default=400, help="timed calls per callable and order")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "corun_overhead.json")
    args = ap.parse_args()

    import onnxruntime

    from taskgroup.fileio import write_json_atomic
    from taskgroup.profile.device import cpu_model

    pieces = build_runners(args.preset)
    callables = {name: pieces.call(name) for name in NETWORKS}
    callables.update({s: sequence([callables[c] for c in s]) for s in SEQUENCES})
    orders = {"block": p50s(callables, args.runs, 8), "round_robin": p50s(callables, args.runs, args.runs)}
    pieces.close()
    rows = []
    for s in SEQUENCES:
        row = {"sequence": s, "networks": len(s)}
        for order, med in orders.items():
            alone = sum(med[c] for c in s)
            row[order] = {"sequence_p50_ms": med[s], "sum_alone_p50_ms": alone, "ratio": med[s] / alone}
        rows.append(row)
    result = {
        "kind": "benchmark_result", "schema_version": 1, "benchmark": "corun_overhead",
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "onnxruntime": onnxruntime.__version__, "load_average_1_5_15min": list(os.getloadavg())},
        "preset": args.preset, "runs": args.runs,
        "networks": {k: {"width": w, "served": list(s)} for k, (w, s) in NETWORKS.items()},
        "alone_p50_ms": {order: {k: med[k] for k in NETWORKS} for order, med in orders.items()},
        "sequences": rows,
        "note": "ratio = sequence p50 / sum of its networks' p50s timed the same way; ONNX Runtime CPU, 1 thread",
    }
    write_json_atomic(args.out, result)
    for r in rows:
        print(f"{r['sequence']:>5} ({r['networks']} nets): block {r['block']['ratio']:.3f}  "
              f"round-robin {r['round_robin']['ratio']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
