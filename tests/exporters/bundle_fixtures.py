"""Build small groupings by hand (tiny preset checkpoints, best.json) for export tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from taskgroup.models import create_model, save_checkpoint
from taskgroup.presets import get_arch_preset

# Two networks: a pair serving segmentation+depth with an auxiliary normals head, and a
# half-width single network serving edges.
DEFAULT_NETWORKS = (
    {"tasks": ["segment_semantic", "depth_zbuffer", "normal"], "served": ["segment_semantic", "depth_zbuffer"],
     "width": 1.0, "cost": 2.5},
    {"tasks": ["edge_texture"], "served": ["edge_texture"], "width": 0.5, "cost": 1.25},
)


def make_grouping(root: Path, networks=DEFAULT_NETWORKS, unit: str = "ms", seed: int = 0) -> Path:
    """Save tiny checkpoints with non-trivial weights and write best.json next to them."""
    preset = get_arch_preset("tiny")
    root.mkdir(parents=True, exist_ok=True)
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
        rel = f"ckpt/net{i}.pt"
        save_checkpoint(model.eval(), root / rel)
        nets.append({"tasks": net["tasks"], "served": net["served"], "width": net["width"], "stage": "final",
                     "checkpoint": rel, "estimated": False, "cost": net["cost"]})
        for t in net["served"]:
            served_by[t] = i
            tasks.append(t)
    doc = {"schema_version": 1, "kind": "grouping", "tasks": tasks,
           "budget": {"value": 5.0, "unit": unit, "profile": None},
           "networks": nets, "served_by": served_by, "objective": 1.0}
    path = root / "best.json"
    path.write_text(json.dumps(doc, indent=2))
    return path
