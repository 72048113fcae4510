import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from taskgroup_runtime import (BackendUnavailableError, BundleError, OrtRunner, RuntimeInputError, SessionFromOnnx, load_bundle,
                     read_manifest)

REPO = Path(__file__).parents[2]


def _rewrite_manifest(bundle_dir: Path, edit) -> None:
    """Edit the manifest and re-seal its digest, as an attacker who understands the format would."""
    from taskgroup_runtime.manifest import manifest_digest

    path = bundle_dir / "manifest.json"
    doc = json.loads(path.read_text())
    edit(doc)
    doc["content_sha256"] = manifest_digest(doc)
    path.write_text(json.dumps(doc))


def test_runtime_imports_and_runs_without_torch(tiny_bundle):
    code = f"""
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None
sys.meta_path.insert(0, BlockTorch())
import numpy as np
import taskgroup_runtime as runtime
b = runtime.load_bundle({str(tiny_bundle)!r})
out = b.run(np.zeros((16, 16, 3), np.uint8))
assert set(out) == {{"segment_semantic", "depth_zbuffer", "edge_texture"}}, out.keys()
assert "torch" not in sys.modules and "taskgroup" not in sys.modules, [m for m in sys.modules if m.startswith(("torch", "taskgroup"))]
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_uint8_hwc_and_float_nchw_frames_give_the_same_outputs(tiny_bundle):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with load_bundle(tiny_bundle) as b:
        a = b.run(frame)
        f = b.run((frame.transpose(2, 0, 1).astype(np.float32) / 255)[None])
    for t in a:
        assert a[t].shape[0] == 1
        np.testing.assert_allclose(a[t], f[t], rtol=0, atol=1e-6)


def test_batch_equals_frames_run_one_by_one(tiny_bundle):
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    with load_bundle(tiny_bundle) as b:
        batch = b.run(frames)
        single = [b.run(f) for f in frames]
    for t in batch:
        np.testing.assert_allclose(batch[t], np.concatenate([s[t] for s in single]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("execution", ["sequential", "concurrent"])
def test_four_threads_get_the_single_threaded_results(tiny_bundle, execution):
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(8)]
    with load_bundle(tiny_bundle, execution=execution) as b:
        assert b.execution == execution
        expected = [b.run(f) for f in frames]
        errors, mismatches = [], []

        def worker(k: int) -> None:
            try:
                for i in range(50):
                    j = (i + k) % len(frames)
                    out = b.run(frames[j])
                    if any(not np.array_equal(out[t], expected[j][t]) for t in out):
                        mismatches.append((k, i))
            except Exception as exc:  # collected and reported by the assertion below
                errors.append(repr(exc))

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert errors == [] and mismatches == []


def test_execution_mode_is_measured_and_recorded(tiny_bundle):
    with load_bundle(tiny_bundle) as b:
        assert b.execution in ("sequential", "concurrent")
        medians = b.load_report["execution_medians_ms"]
        assert set(medians) == {"sequential", "concurrent"}
        # Sequential (the mode the costs assume) unless concurrent was clearly faster at load.
        from taskgroup_runtime.bundle import CONCURRENT_MARGIN

        clearly = medians["concurrent"] < CONCURRENT_MARGIN * medians["sequential"]
        assert b.execution == ("concurrent" if clearly else "sequential")
        assert all(p["providers"] == ["CPUExecutionProvider"] for p in b.describe()["runners"])


def test_benchmark_reports_ordered_percentiles(tiny_bundle):
    with load_bundle(tiny_bundle) as b:
        r = b.benchmark(runs=30, warmup=2)
        nets = b.benchmark_networks(runs=10, warmup=1)
    assert r.latency.runs == 30 and 0 < r.latency.min_ms <= r.latency.p50_ms <= r.latency.p90_ms <= r.latency.p99_ms
    assert r.to_json()["runs"] == 30 and r.batch == 1
    assert [n["network"] for n in nets] == ["net0", "net1"]


@pytest.mark.parametrize("frame, match", [
    (np.zeros((16, 16, 4), np.uint8), "channels"),
    (np.zeros((3, 16, 16), np.uint8), "channels"),
    (np.zeros((16, 16, 3), np.float32), "channels"),
    (np.zeros((1, 3, 32, 32), np.float32), "expects 16x16"),
    (np.zeros((0, 16, 3), np.uint8), "empty frame"),  # a frame of another size is resized; one of no pixels is not
    (np.zeros((1, 3, 20, 16), np.float32), "float32 frames are not resized"),
    (np.zeros((16, 16385, 3), np.uint8), "up to 16384 pixels a side"),
    (np.zeros((1, 3, 16, 16), np.float64), "dtype float64"),
    (np.full((1, 3, 16, 16), np.nan, np.float32), "NaN"),
    (np.full((1, 3, 16, 16), 255.0, np.float32), r"divide 0..255"),
    (np.zeros((0, 16, 16, 3), np.uint8), "empty frame or batch"),
    (np.zeros((16, 16), np.uint8), "shape"),
    ([[0, 0, 0]], "numpy array"),
    # NaN hidden under a mask: masked reductions skip it, so it would reach the networks
    (np.ma.masked_array(np.full((1, 3, 16, 16), np.nan, np.float32), mask=True), "masked arrays"),
    (np.ma.masked_array(np.zeros((16, 16, 3), np.uint8)), "masked arrays"),
])
def test_bad_frames_raise_a_clear_input_error(tiny_bundle, frame, match):
    with load_bundle(tiny_bundle, execution="sequential") as b:
        with pytest.raises(RuntimeInputError, match=match) as info:
            b.run(frame)
        assert isinstance(info.value, ValueError)
        b.run(np.zeros((16, 16, 3), np.uint8))  # still usable afterwards


def test_a_flipped_byte_in_any_file_is_refused(bundle_copy):
    for name in sorted(p.name for p in bundle_copy.iterdir()):
        path = bundle_copy / name
        original = path.read_bytes()
        data = bytearray(original)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(BundleError):
            load_bundle(bundle_copy)
        path.write_bytes(original)
    load_bundle(bundle_copy).close()  # intact again


def test_a_changed_manifest_value_is_refused(bundle_copy):
    path = bundle_copy / "manifest.json"
    doc = json.loads(path.read_text())
    doc["tasks"]["depth_zbuffer"]["output"] = "edge_texture"
    path.write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="content_sha256"):
        load_bundle(bundle_copy)


def test_a_missing_file_is_refused(bundle_copy):
    (bundle_copy / "net1.onnx").unlink()
    with pytest.raises(BundleError, match="net1.onnx.*missing"):
        load_bundle(bundle_copy)


def test_a_model_file_replaced_by_a_fifo_is_named_as_such_and_never_opened(bundle_copy):
    import os

    (bundle_copy / "net1.onnx").unlink()
    os.mkfifo(bundle_copy / "net1.onnx")  # opening it for reading would block: the check must not
    with pytest.raises(BundleError, match=r"'net1.onnx' listed in manifest.json is not a regular file \(a FIFO\)"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "bogus"}, "unknown backend 'bogus'; valid options: auto, onnxruntime"),
    ({"backend": None}, "unknown backend None"),
    ({"device": "tpu"}, "unknown device 'tpu'; valid devices: cpu, cuda, cuda:N"),
    ({"device": "cpu:0"}, "unknown device 'cpu:0'"),
    ({"expected_digest": 123}, "expected_digest must be the manifest's content_sha256"),
    ({"expected_digest": "ABC"}, "expected_digest must be the manifest's content_sha256"),
])
def test_bad_arguments_are_value_errors_before_anything_is_read(tmp_path, kwargs, message):
    from taskgroup_runtime.errors import BackendUnavailableError

    with pytest.raises(ValueError, match=message) as exc:
        load_bundle(tmp_path / "no-bundle-here", **kwargs)  # the argument is refused before the path is read
    assert not isinstance(exc.value, BackendUnavailableError)


@pytest.mark.parametrize("bad", ["../net0.onnx", "/etc/passwd", "sub/../../x.onnx"])
def test_manifest_paths_leaving_the_bundle_are_refused(bundle_copy, bad):
    def edit(doc):
        doc["files"][bad] = doc["files"].pop("net0.onnx")
        doc["networks"][0]["files"]["onnx"] = bad

    _rewrite_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match="not allowed|contains '..'"):
        load_bundle(bundle_copy)


def test_symlink_pointing_outside_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "outside.onnx"
    (bundle_copy / "net0.onnx").rename(outside)
    (bundle_copy / "net0.onnx").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(bundle_copy)


def test_manifest_of_another_kind_is_refused(bundle_copy):
    _rewrite_manifest(bundle_copy, lambda d: d.update(kind="grouping"))
    with pytest.raises(BundleError, match="'kind'"):
        read_manifest(bundle_copy)


def test_unavailable_backends_fail_loudly_instead_of_falling_back(tiny_bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider.*available"):
            load_bundle(tiny_bundle, device="cuda")
    with pytest.raises(BackendUnavailableError, match="needs a CUDA device"):
        load_bundle(tiny_bundle, backend="onnxruntime-tensorrt", device="cpu")
    with pytest.raises(BackendUnavailableError, match="no TensorRT engines|tensorrt"):
        load_bundle(tiny_bundle, backend="tensorrt", device="cuda")
    # A name that is no backend or device at all is a bad argument (ValueError), not an unavailable backend.
    with pytest.raises(ValueError, match="valid options"):
        load_bundle(tiny_bundle, backend="openvino")
    with pytest.raises(ValueError, match="valid devices: cpu, cuda, cuda:N"):
        load_bundle(tiny_bundle, device="gpu")


def test_an_allowed_fallback_is_labelled_as_the_cpu_it_runs_on(tiny_bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a CUDA-capable onnxruntime is installed: no fallback to observe")
    with load_bundle(tiny_bundle, device="cuda", allow_fallback=True) as bundle:
        assert bundle.device == "cpu" and "asked for cuda" in bundle.load_report["fallback"]
        assert bundle.benchmark(runs=10).device == "cpu"  # never a CPU timing labelled as GPU
        assert bundle.measure(runs=10).standalone  # standalone sessions use the effective device


def test_an_allowed_fallback_of_the_ort_tensorrt_provider_measures_on_plain_cpu_sessions(tiny_bundle):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("a TensorRT-capable onnxruntime is installed: no fallback to observe")
    with load_bundle(tiny_bundle, backend="onnxruntime-tensorrt", device="cuda", allow_fallback=True) as bundle:
        assert (bundle.backend, bundle.device) == ("onnxruntime", "cpu")
        assert len(bundle.measure(runs=5).standalone) == 2


def _to_external_weights(bundle_dir: Path, name: str = "net1") -> None:
    """Move a network's weights into a separate .onnx.data file, as export does for very large models."""
    import hashlib

    import onnx

    model = onnx.load(str(bundle_dir / f"{name}.onnx"))
    onnx.save(model, str(bundle_dir / f"{name}.onnx"), save_as_external_data=True,
              location=f"{name}.onnx.data", size_threshold=256)  # small constants stay inline
    assert (bundle_dir / f"{name}.onnx.data").stat().st_size > 0

    def edit(doc):
        for f in (f"{name}.onnx", f"{name}.onnx.data"):
            blob = (bundle_dir / f).read_bytes()
            doc["files"][f] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
        next(n for n in doc["networks"] if n["name"] == name)["files"]["onnx_data"] = f"{name}.onnx.data"

    _rewrite_manifest(bundle_dir, edit)


def test_external_weights_load_from_the_verified_bytes_not_a_second_read(bundle_copy, tiny_bundle, monkeypatch):
    import taskgroup_runtime.bundle as rb

    frame = np.full((16, 16, 3), 100, np.uint8)
    with load_bundle(tiny_bundle) as b:
        expected = b.run(frame)
    _to_external_weights(bundle_copy)
    real_verify = rb.verify_files

    def verify_then_tamper(manifest, keep=None):
        blobs = real_verify(manifest, keep)
        data = bundle_copy / "net1.onnx.data"  # changed after its hash was checked
        data.write_bytes(bytes(len(data.read_bytes())))
        return blobs

    monkeypatch.setattr(rb, "verify_files", verify_then_tamper)
    with load_bundle(bundle_copy, execution="sequential") as b:
        got = b.run(frame)
    for t in expected:
        np.testing.assert_allclose(got[t], expected[t], rtol=0, atol=1e-6)


def test_a_manifest_that_disagrees_with_its_models_is_refused_at_load(bundle_copy):
    _rewrite_manifest(bundle_copy, lambda d: d["tasks"]["edge_texture"].update(output="edges"))
    with pytest.raises(BundleError, match="no output 'edges'"):
        load_bundle(bundle_copy)


def test_a_wrong_channel_count_in_the_manifest_is_refused_at_load(bundle_copy):
    _rewrite_manifest(bundle_copy, lambda d: d["tasks"]["edge_texture"]["shape"].__setitem__(1, 3))
    with pytest.raises(BundleError, match="3 channels"):
        load_bundle(bundle_copy)


def _reseal_file(bundle_dir: Path, name: str, data: bytes) -> None:
    """Replace a model file and re-seal the manifest around it (valid hashes, wrong content)."""
    import hashlib

    (bundle_dir / name).write_bytes(data)
    _rewrite_manifest(bundle_dir, lambda d: d["files"][name].update(sha256=hashlib.sha256(data).hexdigest(),
                                                                     bytes=len(data)))


@pytest.mark.parametrize("data", [b"not a model at all", b"\x08\x07" + bytes(64)])
def test_a_resealed_garbage_model_is_a_bundle_error_at_load(bundle_copy, data):
    _reseal_file(bundle_copy, "net1.onnx", data)
    with pytest.raises(BundleError, match=r"field 'networks\[1\].files.onnx': net1.onnx is not a model"):
        load_bundle(bundle_copy)


def test_a_model_of_another_network_is_a_bundle_error_at_load(bundle_copy):
    """A model that parses but computes other tasks: the task mapping is checked at load."""
    _reseal_file(bundle_copy, "net1.onnx", (bundle_copy / "net0.onnx").read_bytes())
    with pytest.raises(BundleError, match="no output 'edge_texture'"):
        load_bundle(bundle_copy)


def _edge_model(target_shape=None, nan_weight=False) -> bytes:
    """A hand-built stand-in for net1 (input 'image', output 'edge_texture'): a Reshape of the image to
    `target_shape`, or a 1x1 convolution (with a NaN weight if asked)."""
    from onnx import TensorProto, helper, numpy_helper

    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])
    out = helper.make_tensor_value_info("edge_texture", TensorProto.FLOAT, ["N", 1, 16, 16])
    if target_shape is not None:
        init = [numpy_helper.from_array(np.array(target_shape, np.int64), "shape")]
        node = helper.make_node("Reshape", ["image", "shape"], ["edge_texture"])
    else:
        w = np.full((1, 3, 1, 1), 0.1, np.float32)
        w[0, 0] = np.nan if nan_weight else 0.1
        init = [numpy_helper.from_array(w, "w")]
        node = helper.make_node("Conv", ["image", "w"], ["edge_texture"])
    graph = helper.make_graph([node], "edge", [inp], [out], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def test_a_resealed_model_that_fails_on_a_frame_is_a_bundle_error_at_load(bundle_copy):
    _reseal_file(bundle_copy, "net1.onnx", _edge_model(target_shape=[-1, 1, 16, 15]))  # 768 values, not a multiple of 240
    with pytest.raises(BundleError, match=r"field 'networks\[1\]': net1.onnx fails on a test frame at load"):
        load_bundle(bundle_copy, warmup=0)


def test_a_resealed_model_with_other_output_sizes_is_a_bundle_error_at_load(bundle_copy):
    _reseal_file(bundle_copy, "net1.onnx", _edge_model(target_shape=[-1, 1, 16, 8]))  # (6, 1, 16, 8) per frame
    with pytest.raises(BundleError, match=r"field 'tasks.edge_texture.shape'.*net1.onnx outputs \[6, 1, 16, 8\]"):
        load_bundle(bundle_copy, warmup=0)


def test_a_resealed_model_with_nan_weights_is_a_bundle_error_at_load(bundle_copy):
    _reseal_file(bundle_copy, "net1.onnx", _edge_model(nan_weight=True))
    with pytest.raises(BundleError, match="edge_texture.*net1.onnx outputs NaN or infinity"):
        load_bundle(bundle_copy, warmup=0)
    _reseal_file(bundle_copy, "net1.onnx", _edge_model())  # the same model with finite weights loads and runs
    with load_bundle(bundle_copy, warmup=0) as b:
        assert b.run(np.zeros((16, 16, 3), np.uint8))["edge_texture"].shape == (1, 1, 16, 16)


@pytest.mark.parametrize("side", [32, 8])
def test_an_input_size_the_models_do_not_take_is_a_bundle_error_at_load(bundle_copy, side):
    _rewrite_manifest(bundle_copy, lambda d: d["input"].update(shape=["N", 3, side, side]))
    with pytest.raises(BundleError, match=rf"field 'input.shape': the manifest says \['N', 3, {side}, {side}\], "
                                          r"net0.onnx takes \['N', 3, 16, 16\]"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("shape", [["N", 3, 100_000, 100_000], ["N", 3, 16, 0], ["N", 3, 16.0, 16], ["N", 3, True, 16]])
def test_absurd_input_sizes_are_refused_before_anything_is_allocated(bundle_copy, shape):
    _rewrite_manifest(bundle_copy, lambda d: d["input"].update(shape=shape))
    with pytest.raises(BundleError, match=r"field 'input.shape': expected \['N', 3, H, W\] with H and W in 1..8192"):
        read_manifest(bundle_copy)


@pytest.mark.parametrize("edit, field", [
    # an extra network serving no task would run on every frame for nothing
    (lambda d: d["networks"].append({**d["networks"][1], "name": "net2", "tasks": []}), r"networks\[2\]"),
    (lambda d: d["networks"].append({**d["networks"][1], "name": "net2"}), r"networks\[2\]"),
    (lambda d: d["networks"][0].update(tasks=["segment_semantic", "depth_zbuffer", "normal"]), r"networks\[0\].tasks"),
    (lambda d: d["input"].update(value_range=["0", "1"]), "input.value_range"),
    (lambda d: d["input"].update(value_range=[1.0, 0.0]), "input.value_range"),
    (lambda d: d["input"]["normalization"].update(std=[0.5, 0.0, 0.5]), "input.normalization.std"),
    (lambda d: d["input"]["normalization"].update(mean="0.5"), "input.normalization.mean"),
    (lambda d: d["networks"][0].update(predicted_latency=-2.9), r"networks\[0\].predicted_latency"),
    (lambda d: d["selection"]["predicted_latency"].update(value=-2.9), "selection.predicted_latency.value"),
    (lambda d: d["selection"]["budget"].update(value=0), "selection.budget.value"),
    (lambda d: d["tasks"]["edge_texture"]["shape"].__setitem__(1, 0), "tasks.edge_texture.shape"),
    # thousands of threads per session, or a number ONNX Runtime cannot take at all
    (lambda d: d["selection"].update(profiled_backend_settings={"intra_op_num_threads": 2 ** 31}),
     "selection.profiled_backend_settings.intra_op_num_threads"),
])
def test_manifest_values_that_would_fail_later_are_refused_at_read(bundle_copy, edit, field):
    _rewrite_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=f"field '{field}'"):
        read_manifest(bundle_copy)


def test_a_manifest_symlinked_from_outside_the_bundle_is_refused(bundle_copy, tmp_path):
    outside = tmp_path / "elsewhere.json"
    (bundle_copy / "manifest.json").rename(outside)
    (bundle_copy / "manifest.json").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize("kw", [{"threads": -1}, {"threads": 0}, {"threads": 2.5}, {"threads": True},
                                {"threads": "2"}, {"threads": 2 ** 31}, {"warmup": -1}, {"measure_rounds": 0}])
def test_bad_load_arguments_are_a_value_error_naming_them(tiny_bundle, kw):
    (name, value), = kw.items()
    with pytest.raises(ValueError, match=f"{name} must be an integer >= "):
        load_bundle(tiny_bundle, **kw)


def test_a_memory_mapped_frame_is_accepted(tiny_bundle, tmp_path):
    frame = np.lib.format.open_memmap(tmp_path / "f.npy", mode="w+", dtype=np.uint8, shape=(16, 16, 3))
    frame[:] = 7
    with load_bundle(tiny_bundle, execution="sequential") as b:
        a, m = b.run(np.array(frame)), b.run(frame)
    assert all(np.array_equal(a[t], m[t]) for t in a)


@pytest.mark.parametrize("execution", ["sequential", "concurrent"])
def test_close_waits_for_calls_in_progress(tiny_bundle, execution):
    frame = np.zeros((16, 16, 3), np.uint8)
    bundle = load_bundle(tiny_bundle, execution=execution)
    errors, stop = [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                bundle.run(frame)
            except RuntimeError as exc:  # after close: the only acceptable error
                if "bundle is closed" not in str(exc):
                    errors.append(repr(exc))
                return
            except Exception as exc:  # noqa: BLE001
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=loop) for _ in range(3)]
    for t in threads:
        t.start()
    bundle.close()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    with pytest.raises(RuntimeError, match="bundle is closed"):
        bundle.run(frame)


def test_sessions_default_to_the_profiled_thread_count(bundle_copy):
    from taskgroup_runtime.bundle import cpu_cores

    with load_bundle(bundle_copy, execution="sequential") as b:
        assert b.load_report["threads_per_session"] == [cpu_cores()] * 2  # nothing recorded: all cores
    _rewrite_manifest(bundle_copy, lambda d: d["selection"].update(
        profiled_backend_settings={"intra_op_num_threads": 1}))
    with load_bundle(bundle_copy, execution="sequential") as b:
        assert b.load_report["threads_per_session"] == [1, 1]
        assert b.load_report["threads_source"] == "as profiled (manifest)"
    with load_bundle(bundle_copy, execution="sequential", threads=2) as b:
        assert b.load_report["threads_per_session"] == [2, 2]


def test_a_pinned_digest_accepts_only_that_bundle(bundle_copy):
    digest = json.loads((bundle_copy / "manifest.json").read_text())["content_sha256"]
    with load_bundle(bundle_copy, expected_digest=digest) as b:
        assert b.tasks
    # A deliberate edit that re-seals the manifest passes the self-check but not the pin.
    _rewrite_manifest(bundle_copy, lambda d: d["tasks"]["edge_texture"].update(meaning="edited"))
    with pytest.raises(BundleError, match="not the bundle the deployment pinned"):
        load_bundle(bundle_copy, expected_digest=digest)


def test_runner_interface_activate_infer_deactivate(tiny_bundle):
    model = (tiny_bundle / "net1.onnx").read_bytes()
    runner = OrtRunner(SessionFromOnnx(model, providers=["CPUExecutionProvider"], intra_op_threads=1), name="net1")
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer({"image": np.zeros((1, 3, 16, 16), np.float32)})
    with runner:
        out = runner.infer({"image": np.zeros((2, 3, 16, 16), np.float32)})
        assert out["edge_texture"].shape == (2, 1, 16, 16)
    assert not runner.is_active


def test_robot_loop_example_runs(tiny_bundle):
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "robot_loop.py"), str(tiny_bundle),
                           "--frames", "20"], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    assert "20 frames" in proc.stdout and "segment_semantic" in proc.stdout


def test_a_resealed_fused_manifest_swapping_equal_outputs_loads_mislabelled_unless_the_digest_is_pinned(
        fused_bundle, tmp_path):
    """What docs/deploy.md says the runtime cannot guarantee, and the pin that guards against it."""
    import shutil

    copy = tmp_path / "fused"
    shutil.copytree(fused_bundle, copy)
    digest = json.loads((copy / "manifest.json").read_text())["content_sha256"]
    frame = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with load_bundle(copy) as b:
        before = b.run(frame)

    def swap(doc):  # depth and edges have the same shape (N, 1, 16, 16): nothing at load can tell them apart
        t = doc["tasks"]
        t["depth_zbuffer"]["output"], t["edge_texture"]["output"] = t["edge_texture"]["output"], t["depth_zbuffer"]["output"]

    _rewrite_manifest(copy, swap)
    with load_bundle(copy) as b:
        after = b.run(frame)
    np.testing.assert_array_equal(after["depth_zbuffer"], before["edge_texture"])  # mislabelled, as documented
    np.testing.assert_array_equal(after["edge_texture"], before["depth_zbuffer"])
    with pytest.raises(BundleError, match="not the bundle the deployment pinned"):
        load_bundle(copy, expected_digest=digest)
    doc = " ".join((Path(__file__).parents[2] / "docs" / "deploy.md").read_text().split())
    assert "swaps the outputs of two tasks of equal shape" in doc and "expected_digest=PINNED" in doc
