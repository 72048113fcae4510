"""Repeatability of device profiling: two profiling runs on the same machine should agree within 10% at p50.

Runs the default-preset profile twice (ONNX Runtime on the CPU by default), compares the p50
of every trunk, head and directly measured whole network, checks the measured-latency
sanity relations (half width faster than full; more served heads slower) and records the
cost model's error. Writes benchmarks/results/profile_repeatability-<machine>.json.

    python benchmarks/profile_repeatability.py [--backend onnxruntime|torch] [--preset default]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskgroup.fileio import write_json_atomic  # noqa: E402
from taskgroup.profile.device import cpu_model, library_versions, slug  # noqa: E402
from taskgroup.profile.profiler import ProfileConfig, run_profile  # noqa: E402


def p50s(doc: dict) -> dict[str, float]:
    out = {}
    for w in doc["widths"]:
        out[f"{w['width']:g}/trunk"] = w["trunk"]["latency_ms"]["p50"]
        for t, h in w["heads"].items():
            out[f"{w['width']:g}/head/{t}"] = h["latency_ms"]["p50"]
    for v in doc["validation"]["networks"]:
        out[f"{v['width']:g}/net/{'+'.join(v['served'])}"] = v["latency_ms"]["p50"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--tolerance", type=float, default=0.10, help="allowed relative p50 difference")
    args = ap.parse_args()
    config = ProfileConfig(backend=args.backend, preset=args.preset)
    runs = [run_profile(config, report=lambda m: print(m, file=sys.stderr)).to_json() for _ in range(2)]
    a, b = (p50s(d) for d in runs)
    diffs = {k: abs(a[k] - b[k]) / min(a[k], b[k]) for k in a}
    worst = max(diffs, key=diffs.get)
    sanity = {}
    for doc in runs:
        full, half = doc["widths"][0], doc["widths"][1]
        nets = {(v["width"], len(v["served"])): v["latency_ms"]["p50"] for v in doc["validation"]["networks"]}
        sanity.setdefault("half_trunk_faster_than_full", []).append(
            half["trunk"]["latency_ms"]["p50"] < full["trunk"]["latency_ms"]["p50"])
        sanity.setdefault("half_network_faster_than_full", []).append(
            nets[(0.5, len(doc["tasks"]))] < nets[(1.0, len(doc["tasks"]))])
        by_size = sorted((k[1], p) for k, p in nets.items() if k[0] == 1.0)
        sanity.setdefault("more_heads_slower_at_full_width", []).append(
            all(p1 < p2 for (_, p1), (_, p2) in zip(by_size, by_size[1:])))
    result = {
        "kind": "benchmark_result", "schema_version": 1, "benchmark": "profile_repeatability",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_model": cpu_model(), "cpu_cores": os.cpu_count(), "load_average_1_5_15": os.getloadavg()},
        "libraries": library_versions(),
        "config": {"backend": args.backend, "preset": args.preset, "threads": config.threads,
                   "timing": runs[0]["timing"]},
        "tolerance": args.tolerance,
        "max_relative_p50_difference": diffs[worst], "worst_item": worst,
        "mean_relative_p50_difference": sum(diffs.values()) / len(diffs),
        "within_tolerance": diffs[worst] <= args.tolerance,
        "items_outside_tolerance": sorted(k for k, d in diffs.items() if d > args.tolerance),
        "cost_model_max_abs_error": [d["validation"]["max_abs_relative_error"] for d in runs],
        "sanity": sanity,
        "duration_s": [d["duration_s"] for d in runs],
        "p50_ms": {k: [a[k], b[k]] for k in a},
    }
    out = Path(__file__).parent / "results" / f"profile_repeatability-{args.backend}-{slug(cpu_model())}.json"
    write_json_atomic(out, result)
    print(f"max p50 difference {100 * diffs[worst]:.1f}% ({worst}); mean {100 * result['mean_relative_p50_difference']:.1f}%; "
          f"cost model error {[round(100 * e, 1) for e in result['cost_model_max_abs_error']]}%; sanity {sanity}; "
          f"wrote {out}")


if __name__ == "__main__":
    main()
