"""`taskgroup pipeline` on user data, end to end: a Taskonomy-layout dataset with 16-bit targets
and a folder dataset with declared tasks and missing labels each go to a bundle whose runtime
outputs are in the data's units: the bundle's errors against the test targets, computed here in
those units, are the test losses the pipeline recorded for the served networks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.append(str(Path(__file__).resolve().parents[2]))  # tests/generated_data.py

from generated_data import FOLDER_TASKS_TOML, folder_dataset, taskonomy_dataset  # noqa: E402
from taskgroup import tasks as registry  # noqa: E402
from taskgroup.errors import TaskgroupError  # noqa: E402


def _config(path: Path, data: dict, extra: str = "") -> Path:
    lines = ["[arch]", "resolution = 32", "[train]", "epochs = 6", "[data]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in data.items()]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def _pipeline(run: Path, config: Path, tasks: str) -> None:
    env = dict(os.environ, TASKGROUP_CACHE=str(run.parent / "cache"))
    proc = subprocess.run([sys.executable, "-m", "taskgroup", "pipeline", "--preset", "tiny", "--config", str(config),
                           "--tasks", tasks, "--out", str(run), "--random-baselines", "0"],
                          env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _check_bundle_units(run: Path, config_path: Path, tasks: tuple[str, ...]) -> dict:
    """Run the bundle on the test images; its loss per task, in the data's units, must be the one
    recorded for the serving network (so the graph maps outputs exactly to the data's units)."""
    import torch

    from taskgroup_runtime import load_bundle
    from taskgroup.data import open_split
    from taskgroup.train import make_run_config

    config = make_run_config("tiny", config_path)
    test = open_split(dataclass_with_cache(config.data, run.parent / "cache"), "test", tasks)
    best = json.loads((run / "best.json").read_text())
    targets_meta = json.loads((run / "train" / "losses.json").read_text())["meta"]["targets"]
    manifest = json.loads((run / "bundle" / "manifest.json").read_text())
    images = np.ascontiguousarray(test.images, dtype=np.float32)
    # A fused bundle takes the camera's 8-bit frame; the resized test images hold values between
    # 8-bit steps, so it is fed their rounding, which moves the loss by well under 2% (a units
    # error moves it by the targets' std: orders of magnitude more).
    fused = manifest.get("graph") == "fused"
    if fused:
        images = np.ascontiguousarray(np.rint(images * 255).astype(np.uint8).transpose(0, 2, 3, 1))
    with load_bundle(run / "bundle") as bundle:
        out = bundle.run(images)
    for task in tasks:
        entry = manifest["tasks"][task]
        assert entry["units"] == targets_meta[task]["units"]
        target, mask = np.array(test.targets[task]), np.array(test.masks[task])
        if targets_meta[task]["mean"] is not None:  # regression: L1 in the data's units
            assert entry["transform"]["mean"] == targets_meta[task]["mean"]
            assert entry["transform"]["std"] == targets_meta[task]["std"]
            m = np.broadcast_to(mask, target.shape)
            loss = np.abs(out[task].astype(np.float64) - target)[m].mean()
        else:  # classification: cross-entropy of the logits
            logits = torch.from_numpy(out[task])
            ce = torch.nn.functional.cross_entropy(logits, torch.from_numpy(target), reduction="none")
            loss = float(ce[torch.from_numpy(mask[:, 0])].mean())
        assert loss == pytest.approx(best["evaluated_losses"][task], rel=2e-2 if fused else 2e-3), task
    return out


def dataclass_with_cache(data_config, cache):
    import dataclasses

    return dataclasses.replace(data_config, cache_dir=str(cache))


@pytest.mark.slow
def test_taskonomy_layout_16_bit_pipeline(tmp_path):
    splits = taskonomy_dataset(tmp_path / "data", per_building=48)
    config = _config(tmp_path / "c.toml", {"source": "taskonomy", "taskonomy_root": str(tmp_path / "data"),
                                            "train_buildings": splits["train"], "val_buildings": splits["val"],
                                            "test_buildings": splits["test"]})
    _pipeline(tmp_path / "run", config, "edge_texture,keypoints2d")
    out = _check_bundle_units(tmp_path / "run", config, ("edge_texture", "keypoints2d"))
    assert out["edge_texture"].mean() > 50  # 16-bit units (the stored values average ~300)
    manifest = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["tasks"]["edge_texture"]["transform"]["mean"] == [718.0]  # the paper's constants


@pytest.mark.slow
def test_folder_layout_with_declared_tasks_pipeline(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_DECLARED", {})
    folder_dataset(tmp_path / "data", sizes=(("train", 192), ("val", 48), ("test", 48)))
    config = _config(tmp_path / "c.toml", {"source": "folder", "folder_root": str(tmp_path / "data")}, FOLDER_TASKS_TOML)
    _pipeline(tmp_path / "run", config, "edge_texture,wetness,terrain")
    _check_bundle_units(tmp_path / "run", config, ("edge_texture", "wetness", "terrain"))
    manifest = json.loads((tmp_path / "run" / "bundle" / "manifest.json").read_text())
    assert manifest["tasks"]["wetness"]["meaning"] == "how wet the surface looks"
    assert manifest["tasks"]["terrain"]["loss"] == "cross_entropy"
    report = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "wetness is labelled on" in report and "terrain is labelled on" in report


def test_a_pipeline_run_from_before_standardisation_names_its_version(tmp_path):
    from taskgroup.fileio import write_json_atomic
    from taskgroup.pipeline.config import PipelineConfig
    from taskgroup.pipeline.run import Pipeline
    from taskgroup.pipeline.state import STATE_FILE

    run = tmp_path / "run"
    run.mkdir()
    write_json_atomic(run / STATE_FILE, {"schema_version": 1, "kind": "pipeline_state", "config": {}, "finished": {}})
    with pytest.raises(TaskgroupError, match="schema_version 1.*before target standardisation.*new --out"):
        Pipeline(run, PipelineConfig(preset="tiny"), resume=True, say=lambda _: None)
