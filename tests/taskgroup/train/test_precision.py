"""Mixed-precision training (`[train] amp`, `train --amp`): bf16 autocast on the CPU against float32,
fp16's loss scaler, the device rules, and the precision as part of a run's recipe."""

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from taskgroup.errors import TaskgroupError
from taskgroup.train import CandidateSpec, make_run_config, train_candidates
from taskgroup.train.precision import MixedPrecision, check_amp_devices
from taskgroup.train.trainer import RunData, load_run_data, train_one

REPO = Path(__file__).resolve().parents[3]
TASKS = ("segment_semantic", "depth_zbuffer", "normal")
# bf16 against float32 on the tiny preset's scenes: every task's validation loss within 5%. Measured
# (seed 0, three networks): 0.07-3.1% apart, as far as two float32 seeds are from each other (0.2-2.7%).
BF16_TOLERANCE = 0.05


def with_amp(config, amp):
    return dataclasses.replace(config, train=dataclasses.replace(config.train, amp=amp))


@pytest.fixture(scope="module")
def scenes(tiny_config_factory):
    config = tiny_config_factory()
    return config, load_run_data(config, TASKS)


def test_bf16_autocast_on_the_cpu_stays_within_tolerance_of_float32(scenes):
    config, data = scenes
    spec = CandidateSpec(TASKS)
    fp32 = train_one(spec, config, data)["final"].losses["val"]
    bf16 = train_one(spec, with_amp(config, "bf16"), data)["final"].losses["val"]
    assert bf16 != fp32  # autocast really ran in bfloat16
    for task in TASKS:
        assert abs(bf16[task] - fp32[task]) <= BF16_TOLERANCE * fp32[task], (task, bf16[task], fp32[task])


def test_bf16_training_is_deterministic_and_keeps_float32_weights(scenes):
    config, data = scenes
    spec = CandidateSpec(("depth_zbuffer",), 0.5)
    a = train_one(spec, with_amp(config, "bf16"), data)["final"]
    b = train_one(spec, with_amp(config, "bf16"), data)["final"]
    assert a.losses == b.losses
    assert all(v.dtype in (torch.float32, torch.int64) for v in a.state_dict.values())


def test_fp16_loss_scaler_skips_overflowing_steps_and_lowers_its_scale():
    """The fp16 path (scaled backward, unscale, skip on inf, update) on the CPU, where torch has
    float16 autocast and a GradScaler too. A first scale of 2**40 overflows float16 gradients:
    those steps are skipped (the weights stay as they were) and the scale halves each time."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    amp = MixedPrecision("fp16", "cpu")
    amp.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40)
    x, y = torch.rand(4, 3, 8, 8), torch.rand(4, 1, 8, 8)
    before = [p.detach().clone() for p in model.parameters()]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            out = model(x)
        assert out.dtype == torch.float16
        loss = torch.nn.functional.l1_loss(out.float(), y)
        amp.backward(loss)
        amp.step(optimizer)
        return float(loss.detach())

    step()
    assert amp.scaler.get_scale() == 2.0 ** 39  # the overflowing step was skipped ...
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # ... and the weights untouched
    losses = [step() for _ in range(60)]
    assert amp.scaler.get_scale() < 2.0 ** 30  # the scale came down to where float16 gradients are finite
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert losses[-1] < 0.7 * losses[0]  # and the steps taken since then train


def test_off_is_float32_and_has_no_scaler():
    amp = MixedPrecision("off", "cpu")
    with amp.autocast():
        assert torch.nn.Linear(2, 2)(torch.rand(1, 2)).dtype == torch.float32
    assert amp.scaler is None and MixedPrecision("bf16", "cpu").scaler is None


def test_fp16_is_refused_off_cuda_and_bf16_is_not():
    with pytest.raises(TaskgroupError, match="--amp fp16 trains on CUDA devices only.*--devices has cpu.*--amp bf16"):
        check_amp_devices("fp16", ["cpu"])
    with pytest.raises(TaskgroupError, match="--amp fp16.*cpu"):
        check_amp_devices("fp16", ["cuda:0", "cpu"])
    check_amp_devices("bf16", ["cpu"])
    check_amp_devices("off", ["cpu"])
    with pytest.raises(TaskgroupError, match="unknown precision 'fp8'; valid options: off, bf16, fp16"):
        check_amp_devices("fp8", ["cpu"])


def test_fp16_on_the_cpu_is_refused_before_a_run_directory_exists(tmp_path, fake_splits):
    data = RunData.from_splits(("depth_zbuffer",), *fake_splits)
    config = with_amp(make_run_config("tiny"), "fp16")
    with pytest.raises(TaskgroupError, match="--amp fp16 trains on CUDA devices only"):
        train_candidates(tmp_path / "run", ("depth_zbuffer",), [CandidateSpec(("depth_zbuffer",))], config, data=data)
    assert not (tmp_path / "run").exists()
    with pytest.raises(TaskgroupError, match="--amp fp16 trains on CUDA devices only"):
        train_one(CandidateSpec(("depth_zbuffer",)), config, data)


def test_affinity_tracking_is_refused_with_mixed_precision(tmp_path, fake_splits):
    data = RunData.from_splits(("depth_zbuffer", "normal"), *fake_splits)
    config = with_amp(make_run_config("tiny"), "bf16")
    with pytest.raises(TaskgroupError, match=r"affinity tracking needs float32 training.*--amp off"):
        train_candidates(tmp_path / "run", ("depth_zbuffer", "normal"), [], config, data=data, affinity=True)
    assert not (tmp_path / "run").exists()


def test_config_file_field_amp_is_checked(tmp_path):
    path = tmp_path / "cfg.toml"
    path.write_text('[train]\namp = "half"\n')
    with pytest.raises(TaskgroupError, match=r"field 'amp': unknown precision 'half'; valid options: off, bf16, fp16"):
        make_run_config("tiny", path)
    path.write_text('[train]\namp = "bf16"\n')
    assert make_run_config("tiny", path).train.amp == "bf16"


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "taskgroup", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_records_the_precision_and_refuses_to_resume_with_another(tmp_path, tiny_config_factory):
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(f'[data]\ncache_dir = "{tiny_config_factory.cache}"\n[train]\nepochs = 2\n')
    run = tmp_path / "run"
    common = ["train", "--tasks", "depth_zbuffer", "--networks", "depth_zbuffer@0.5", "--preset", "tiny",
              "--config", str(cfg), "--out", str(run)]
    fp16 = run_cli(*common, "--amp", "fp16")
    assert fp16.returncode == 2, fp16.stderr
    assert fp16.stderr.strip().splitlines()[-1].startswith("error: --amp fp16 trains on CUDA devices only")
    assert not run.exists()

    done = run_cli(*common, "--amp", "bf16")
    assert done.returncode == 0, done.stderr
    con = sqlite3.connect(f"file:{run / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        (config_json,) = con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
    finally:
        con.close()
    assert json.loads(config_json)["train"]["amp"] == "bf16"

    other = run_cli("train", "--out", str(run), "--resume", "--amp", "off")
    assert other.returncode == 2
    assert other.stderr.strip() == (f"error: {run}: refusing to resume with --amp off: the run trains with amp 'bf16' "
                                    "(networks of one run share one precision); use a new --out, or resume with "
                                    "--amp bf16")
    same = run_cli("train", "--out", str(run), "--resume", "--amp", "bf16")
    assert same.returncode == 0, same.stderr
    kept = run_cli("train", "--out", str(run), "--resume")  # no --amp: the run's own
    assert kept.returncode == 0, kept.stderr
