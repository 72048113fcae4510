import math

import pytest
import torch

from taskgroup.errors import TaskgroupError
from taskgroup.models import create_model, list_models, load_checkpoint, save_checkpoint
from taskgroup.tasks import TASKS

TINY = dict(stem_channels=8, stage_channels=(8, 16, 16), decoder_channels=(8, 8, 8), blocks_per_stage=1)


@pytest.mark.parametrize("name", list_models())
def test_every_model_outputs_each_task_at_input_resolution(name):
    model = create_model(name, list(TASKS), 1.0, **TINY)
    out = model(torch.rand(2, 3, 16, 24))
    assert set(out) == set(TASKS)
    for task, y in out.items():
        assert y.shape == (2, TASKS[task].channels, 16, 24)


def test_half_width_has_fewer_parameters_and_heads_add_parameters():
    def params(m):
        return sum(p.numel() for p in m.parameters())

    full = create_model("xception", ["normal"], 1.0)
    half = create_model("xception", ["normal"], 0.5)
    pair = create_model("xception", ["normal", "depth_zbuffer"], 1.0)
    assert params(half) < params(full) < params(pair)
    assert params(pair) - params(full) == sum(p.numel() for p in pair.heads["depth_zbuffer"].parameters())


def test_trunk_gradient_is_scaled_by_inverse_sqrt_of_task_count():
    torch.manual_seed(0)
    one = create_model("xception", ["normal"], 1.0, **TINY)
    three = create_model("xception", ["normal", "depth_zbuffer", "rgb"], 1.0, **TINY)
    three.trunk.load_state_dict(one.trunk.state_dict())
    three.heads["normal"].load_state_dict(one.heads["normal"].state_dict())
    x = torch.rand(2, 3, 16, 16)
    one(x)["normal"].sum().backward()
    three(x)["normal"].sum().backward()  # only the normal head contributes: same path, scaled
    g1 = one.trunk.stem[0].weight.grad
    g3 = three.trunk.stem[0].weight.grad
    assert torch.allclose(g3, g1 / math.sqrt(3), rtol=1e-4, atol=1e-7)
    # heads see the unscaled gradient
    assert torch.allclose(three.heads["normal"].body[-1].weight.grad, one.heads["normal"].body[-1].weight.grad, rtol=1e-5)


def test_with_heads_keeps_outputs_of_kept_heads():
    model = create_model("xception", ["normal", "depth_zbuffer", "rgb"], 1.0, **TINY).eval()
    pruned = model.with_heads(["rgb"])
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x)["rgb"], pruned(x)["rgb"])
    assert list(pruned(x)) == ["rgb"]
    assert set(model.heads) == {"normal", "depth_zbuffer", "rgb"}  # original untouched
    with pytest.raises(ValueError):
        model.with_heads(["segment_semantic"])


def test_checkpoint_round_trip_and_damaged_files(tmp_path):
    model = create_model("xception", ["normal", "rgb"], 0.5, **TINY).eval()
    path = tmp_path / "net.pt"
    save_checkpoint(model, path, steps=3)
    loaded = load_checkpoint(path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x)["normal"], loaded(x)["normal"])
    assert loaded.width == 0.5 and loaded.tasks == ("normal", "rgb")

    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(path.read_bytes()[:100])
    with pytest.raises(TaskgroupError, match="damaged.pt"):
        load_checkpoint(damaged)
    with pytest.raises(TaskgroupError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_pickled_code(tmp_path):

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    path = tmp_path / "evil.pt"
    torch.save({"arch": Evil(), "state_dict": {}}, path)
    with pytest.raises(TaskgroupError, match="evil.pt") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)  # torch's advice to load it unsafely is never passed on
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b'{"kind": "grouping"}\n', b"\x80\x04K\x01.", b""])
def test_a_file_that_is_not_a_checkpoint_gives_one_line_without_unsafe_advice(tmp_path, content):
    path = tmp_path / "best.json"
    path.write_bytes(content)
    with pytest.raises(TaskgroupError, match="best.json: not a taskgroup checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_a_checkpoint_is_loaded_only_if_it_matches_the_given_sha256(tmp_path):
    import hashlib

    path = tmp_path / "net.pt"
    save_checkpoint(create_model("xception", ["normal"], 0.5, **TINY), path)
    load_checkpoint(path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with pytest.raises(TaskgroupError, match="does not match its recorded sha256"):
        load_checkpoint(path, sha256="0" * 64)


def test_unknown_model_and_task_names_are_clear_errors():
    with pytest.raises(TaskgroupError, match="registered models: xception"):
        create_model("resnet", ["normal"])
    with pytest.raises(TaskgroupError, match="unknown task 'normals'"):
        create_model("xception", ["normals"])


def test_segment_classes_sizes_the_segmentation_head_and_survives_checkpoints(tmp_path):
    model = create_model("xception", ["segment_semantic", "normal"], 1.0, segment_classes=18, **TINY).eval()
    out = model(torch.rand(1, 3, 16, 16))
    assert out["segment_semantic"].shape[1] == 18 and out["normal"].shape[1] == 3
    save_checkpoint(model, tmp_path / "seg.pt")
    loaded = load_checkpoint(tmp_path / "seg.pt")
    assert loaded.output_channels == {"segment_semantic": 18, "normal": 3}
    assert loaded.with_heads(["segment_semantic"]).output_channels == {"segment_semantic": 18}


def test_listing_models_needs_no_torch_and_a_registered_model_is_built_by_name():
    import subprocess
    import sys

    code = ("import sys; from taskgroup.models import list_models; "
            "assert 'xception' in list_models(); assert 'torch' not in sys.modules, 'torch loaded'")
    subprocess.run([sys.executable, "-c", code], check=True)

    from taskgroup.models import register_model
    from taskgroup.models import registry

    with pytest.raises(ValueError, match="already registered"):
        register_model("xception")(lambda **kw: None)
    try:
        register_model("xception-twin")(lambda tasks, width, **kw: create_model("xception", tasks, width, **TINY))
        assert "xception-twin" in list_models()
        assert set(create_model("xception-twin", ["normal"], 0.5)(torch.rand(1, 3, 16, 16))) == {"normal"}
    finally:
        registry._MODELS.pop("xception-twin", None)
