"""Build small groupings by hand (tiny preset checkpoints, best.json) for export tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from taskgroup_runtime.integrity import sha256_file
from taskgroup.models import create_model, save_checkpoint
from taskgroup.presets import get_arch_preset

# Two networks: a pair serving segmentation+depth with an auxiliary normals head, and a
# half-width single network serving edges.
DEFAULT_NETWORKS = (
    {"tasks": ["segment_semantic", "depth_zbuffer", "normal"], "served": ["segment_semantic", "depth_zbuffer"],
     "width": 1.0, "cost": 2.5},
    {"tasks": ["edge_texture"], "served": ["edge_texture"], "width": 0.5, "cost": 1.25},
)


def make_grouping(root: Path, networks=DEFAULT_NETWORKS, unit: str = "ms", seed: int = 0,
                  run_store: bool = False) -> Path:
    """Save tiny checkpoints with non-trivial weights and write best.json next to them.

    Export verifies every checkpoint against a recorded sha256. By default there is no training
    run, so the grouping records each digest itself; with `run_store` the checkpoints are
    committed to a run's store (root/runs.sqlite, root/checkpoints/) as training would, and the
    grouping records none."""
    from taskgroup.train.candidates import CandidateSpec
    from taskgroup.resultrows import ResultRow
    from taskgroup.train.store import RunStore
    from taskgroup.train.store_file import CHECKPOINT_DIR

    preset = get_arch_preset("tiny")
    root.mkdir(parents=True, exist_ok=True)
    from taskgroup.train import make_run_config

    run_config = json.loads(json.dumps(make_run_config("tiny").to_dict()))  # the run's recipe, as training stores it
    store = RunStore.create(root, run_config, sorted({t for n in networks for t in n["tasks"]})) if run_store else None
    (root / "ckpt").mkdir(exist_ok=True)
    nets, served_by, tasks = [], {}, []
    for i, net in enumerate(networks):
        torch.manual_seed(seed + i)
        model = create_model(preset.model, net["tasks"], net["width"], **preset.model_config)
        # Randomise batch-norm statistics so the check exercises them (fresh ones are identities).
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        rel = f"{CHECKPOINT_DIR}/net{i}_final.pt" if run_store else f"ckpt/net{i}.pt"
        save_checkpoint(model.eval(), root / rel, stage="final")
        entry = {"tasks": net["tasks"], "served": net["served"], "width": net["width"], "stage": "final",
                 "checkpoint": rel, "estimated": False, "cost": net["cost"]}
        if store is not None:
            spec = CandidateSpec(tuple(net["tasks"]), net["width"])
            store.mark_running(spec, 0, ["final"])
            store.commit_results(spec, 0, [ResultRow(stage="final", fraction=1.0, best_epoch=1, steps=1, wall_time_s=0.1,
                                                     losses={"val": {t: 0.5 for t in net["tasks"]}}, checkpoint=rel)])
        else:
            entry["checkpoint_sha256"] = sha256_file(root / rel)
        nets.append(entry)
        for t in net["served"]:
            served_by[t] = i
            tasks.append(t)
    if store is not None:
        store.close()
    doc = {"schema_version": 1, "kind": "grouping", "tasks": tasks,
           "budget": {"value": 5.0, "unit": unit, "profile": None},
           "networks": nets, "served_by": served_by, "objective": 1.0}
    path = root / "best.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def reseal_checkpoints(grouping: Path) -> None:
    """Record the checkpoints' current sha256 in the grouping (after a test rewrote one on purpose)."""
    doc = json.loads(grouping.read_text())
    for net in doc["networks"]:
        net["checkpoint_sha256"] = sha256_file(grouping.parent / net["checkpoint"])
    grouping.write_text(json.dumps(doc, indent=2))
