"""Fuzzing the runtime: frames of every dtype, shape and memory layout; manifests edited and
re-sealed; bundle files damaged; model files damaged and re-sealed.

Each property allows exactly two outcomes: accepted and working (outputs of the manifest's
shapes), or refused with the documented error (RuntimeInputError for a frame, BundleError for
a bundle). Any other exception, or a bad input that is accepted, fails. Example counts keep
the whole file to a few seconds of CI time.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
from hypothesis import assume, event, given, strategies as st
from hypothesis.extra import numpy as hnp

from fuzzing import dumps, fuzz, mutated
from taskgroup_runtime import BundleError, RuntimeInputError, load_bundle
from taskgroup_runtime.manifest import manifest_digest

SIDE = 16  # the tiny bundle's frame size


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    with load_bundle(tiny_bundle, execution="sequential") as b:
        yield b


@pytest.fixture(scope="module")
def fused(fused_bundle):
    with load_bundle(fused_bundle) as b:
        yield b


@pytest.fixture(scope="module")
def workdir(tiny_bundle, tmp_path_factory):
    """A private copy of the bundle that the examples damage and restore."""
    dst = tmp_path_factory.mktemp("fuzz") / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst


def _check_outputs(bundle_or_manifest, out: dict, batch: int) -> None:
    tasks = bundle_or_manifest.manifest.tasks
    assert set(out) == set(tasks)
    for t, o in tasks.items():
        assert out[t].dtype == np.float32 and out[t].shape == (batch, o.channels, SIDE, SIDE), t


# -- frames -------------------------------------------------------------------------------------

# The accepted dtypes and shapes are drawn often, so that about half the frames are valid.
DTYPES = [np.uint8] * 4 + [np.float32] * 4 + [np.float64, np.float16, np.int32, np.int8, np.bool_, np.dtype(">f4"),
                                              np.dtype("<u2")]
VALID_SHAPES = {np.dtype(np.uint8): [(SIDE, SIDE, 3), (1, SIDE, SIDE, 3), (2, SIDE, SIDE, 3)],
                np.dtype(np.float32): [(3, SIDE, SIDE), (1, 3, SIDE, SIDE), (2, 3, SIDE, SIDE)]}
NEAR_VALID_SHAPES = [(SIDE, SIDE, 3), (1, 3, SIDE, SIDE), (SIDE, SIDE, 4), (1, 3, SIDE, SIDE + 1), (0, SIDE, SIDE, 3),
                     (SIDE, SIDE), (3, SIDE, SIDE, 1)]


@st.composite
def frames(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(st.one_of(st.sampled_from(VALID_SHAPES.get(dtype, NEAR_VALID_SHAPES)), st.sampled_from(NEAR_VALID_SHAPES),
                           hnp.array_shapes(min_dims=0, max_dims=5, max_side=5)))
    if dtype.kind == "f":
        bits = min(dtype.itemsize * 8, 64)
        elements = st.one_of(st.floats(0, 1, width=bits), st.floats(width=bits, allow_nan=True, allow_infinity=True))
        if dtype == np.float32:  # 8-bit values too (a uint8 image / 255), which a fused bundle takes
            elements = st.one_of(elements, st.integers(0, 255).map(lambda k: float(np.float32(k / 255))))
        fill = st.floats(0, 1, width=bits)
    else:
        elements = fill = None
    base = draw(hnp.arrays(dtype, shape, elements=elements, fill=fill))
    layout = draw(st.sampled_from(["contiguous"] * 3 + ["fortran", "strided", "readonly", "masked", "masked-nan",
                                                          "subclass"]))
    if layout == "fortran":
        return np.asfortranarray(base)
    if layout == "strided":  # a view with gaps between the elements, same shape and values
        wide = np.zeros(base.shape + (2,), dtype=base.dtype)
        wide[..., 0] = base
        return wide[..., 0]
    if layout == "readonly":
        base.setflags(write=False)
        return base
    if layout.startswith("masked"):
        if layout == "masked-nan" and dtype.kind == "f" and base.size:
            base.flat[0] = np.nan  # hidden under the mask
        return np.ma.masked_array(base, mask=np.zeros(base.shape, bool) | (np.arange(base.size).reshape(base.shape) == 0))
    if layout == "subclass":  # e.g. a camera library's own ndarray type
        return base.view(type("CameraFrame", (np.ndarray,), {}))
    return base


@fuzz(150)
@given(frame=frames())
def test_fuzzed_frames_are_run_correctly_or_refused_with_an_input_error(bundle, frame):
    _run_or_refuse(bundle, frame)


@fuzz(100)
@given(frame=frames())
def test_fuzzed_frames_on_a_fused_bundle_are_run_correctly_or_refused(fused, frame):
    out = _run_or_refuse(fused, frame)
    plain = np.asarray(frame)
    if out is not None and plain.dtype == np.float32:  # accepted only if it holds 8-bit values exactly
        assert np.abs(plain * 255 - np.rint(plain * 255)).max() < 1e-3


def _run_or_refuse(bundle, frame):
    """Run a fuzzed frame: refused with an input error (None), or accepted only in a documented form."""
    try:
        out = bundle.run(frame)
    except RuntimeInputError:
        event("refused")
        return None
    event("accepted")
    plain = np.asarray(frame)
    # Accepted: it must be one of the documented forms, with valid values.
    assert not isinstance(frame, np.ma.MaskedArray)
    assert plain.dtype in (np.uint8, np.float32), plain.dtype
    if plain.dtype == np.float32:
        assert np.isfinite(plain).all() and plain.min() >= 0 and plain.max() <= 1
    batch = 1 if plain.ndim == 3 else plain.shape[0]
    _check_outputs(bundle, out, batch)
    again = bundle.run(np.ascontiguousarray(plain))  # layout never changes the result
    assert all(np.array_equal(out[t], again[t]) for t in out)
    return out


# -- manifests edited and re-sealed --------------------------------------------------------------

def _write_sealed(bundle_dir, doc) -> None:
    try:
        doc["content_sha256"] = manifest_digest(doc)
    except ValueError:  # NaN/inf cannot be sealed; left as the edit made it
        pass
    (bundle_dir / "manifest.json").write_text(dumps(doc))


@fuzz(60)
@given(data=st.data())
def test_fuzzed_resealed_manifests_load_and_run_or_are_a_bundle_error(workdir, data):
    original = (workdir / "manifest.json").read_text()
    doc = data.draw(mutated(json.loads(original), skip=("content_sha256",)))
    _write_sealed(workdir, doc)
    try:
        bundle = _load_or_refused(workdir)
        if bundle is None:
            return
        with bundle:
            out = bundle.run(np.full((SIDE, SIDE, 3), 100, np.uint8))
            _check_outputs(bundle, out, 1)
            assert all(np.isfinite(v).all() for v in out.values())
    finally:
        (workdir / "manifest.json").write_text(original)


def _load_or_refused(workdir):
    """The bundle, or None when loading it is a BundleError (both outcomes counted for hypothesis)."""
    try:
        bundle = load_bundle(workdir, execution="sequential", warmup=0)
    except BundleError:
        event("refused")
        return None
    event("loaded")
    return bundle


# -- damaged files --------------------------------------------------------------------------------

@st.composite
def damage(draw, data: bytes) -> bytes:
    op = draw(st.sampled_from(["flip", "truncate", "append", "zero", "empty"]))
    b = bytearray(data)
    if op == "flip":  # distinct positions, so that two flips never cancel out
        for at in draw(st.lists(st.integers(0, len(b) - 1), min_size=1, max_size=4, unique=True)):
            b[at] ^= draw(st.integers(1, 255))
    elif op == "truncate":
        b = b[:draw(st.integers(0, len(b) - 1))]
    elif op == "append":
        b += draw(st.binary(min_size=1, max_size=64))
    elif op == "zero":
        at = draw(st.integers(0, len(b) - 1))
        b[at:at + 64] = bytes(len(b[at:at + 64]))
    else:
        b = bytearray()
    assume(bytes(b) != data)  # zeroing bytes that were zero already changes nothing
    return bytes(b)


@fuzz(40)
@given(data=st.data())
def test_any_damage_to_a_file_is_refused_at_load(workdir, data):
    name = data.draw(st.sampled_from(sorted(p.name for p in workdir.iterdir())))
    path = workdir / name
    original = path.read_bytes()
    damaged = data.draw(damage(original))
    path.write_bytes(damaged)
    try:
        try:
            load_bundle(workdir, execution="sequential", warmup=0).close()
        except BundleError:
            return
        # Only a manifest whose content is unchanged (e.g. one whitespace byte became another) may load.
        assert name == "manifest.json", f"damaged {name} was accepted"
        assert manifest_digest(json.loads(damaged)) == manifest_digest(json.loads(original))
    finally:
        path.write_bytes(original)


@fuzz(40)
@given(data=st.data())
def test_damaged_models_re_sealed_load_and_run_or_are_a_bundle_error(workdir, data):
    """Valid hashes, wrong content: the manifest was re-sealed after the damage."""
    name = data.draw(st.sampled_from(["net0.onnx", "net1.onnx"]))
    path, manifest = workdir / name, workdir / "manifest.json"
    original, original_manifest = path.read_bytes(), manifest.read_text()
    damaged = data.draw(damage(original))
    path.write_bytes(damaged)
    doc = json.loads(original_manifest)
    doc["files"][name].update(sha256=hashlib.sha256(damaged).hexdigest(), bytes=len(damaged))
    _write_sealed(workdir, doc)
    try:
        bundle = _load_or_refused(workdir)
        if bundle is None:
            return
        with bundle:  # loaded: it ran once on a grey frame at load; any frame must run now
            frame = np.random.default_rng(0).integers(0, 256, (2, SIDE, SIDE, 3), dtype=np.uint8)
            _check_outputs(bundle, bundle.run(frame), 2)
    finally:
        path.write_bytes(original)
        manifest.write_text(original_manifest)


# -- fused bundles: manifests edited and re-sealed, files damaged -------------------------------------

@pytest.fixture(scope="module")
def fused_workdir(fused_bundle, tmp_path_factory):
    dst = tmp_path_factory.mktemp("fuzz-fused") / "bundle"
    shutil.copytree(fused_bundle, dst)
    return dst


@fuzz(50)
@given(data=st.data())
def test_fuzzed_resealed_fused_manifests_load_and_run_or_are_a_bundle_error(fused_workdir, data):
    original = (fused_workdir / "manifest.json").read_text()
    doc = data.draw(mutated(json.loads(original), skip=("content_sha256",)))
    _write_sealed(fused_workdir, doc)
    try:
        bundle = _load_or_refused(fused_workdir)
        if bundle is None:
            return
        with bundle:
            out = bundle.run(np.full((SIDE, SIDE, 3), 100, np.uint8))
            _check_outputs(bundle, out, 1)
            assert all(np.isfinite(v).all() for v in out.values())
    finally:
        (fused_workdir / "manifest.json").write_text(original)


@fuzz(30)
@given(data=st.data())
def test_any_damage_to_a_fused_bundle_file_is_refused_at_load(fused_workdir, data):
    name = data.draw(st.sampled_from(sorted(p.name for p in fused_workdir.iterdir())))
    path = fused_workdir / name
    original = path.read_bytes()
    damaged = data.draw(damage(original))
    path.write_bytes(damaged)
    try:
        try:
            load_bundle(fused_workdir, warmup=0).close()
        except BundleError:
            return
        assert name == "manifest.json", f"damaged {name} was accepted"
        assert manifest_digest(json.loads(damaged)) == manifest_digest(json.loads(original))
    finally:
        path.write_bytes(original)


# -- camera frames of any size, in either colour order ------------------------------------------------

@fuzz(60)
@given(h=st.integers(0, 120), w=st.integers(0, 120), batch=st.sampled_from([None, 1, 2]),
       order=st.sampled_from(["RGB", "BGR", "bgr", "RGBA", ""]), seed=st.integers(0, 2 ** 16),
       fused_graph=st.booleans())
def test_fuzzed_camera_frames_of_any_size_run_resized_or_are_refused(bundle, fused, h, w, batch, order, seed,
                                                                       fused_graph):
    target = fused if fused_graph else bundle
    shape = (h, w, 3) if batch is None else (batch, h, w, 3)
    frame = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    try:
        out = target.run(frame, color_order=order)
    except RuntimeInputError:
        event("refused")
        assert order not in ("RGB", "BGR") or 0 in (h, w)
        return
    event("accepted")
    assert order in ("RGB", "BGR") and h > 0 and w > 0
    _check_outputs(target, out, batch or 1)  # always the bundle's own size
    flipped = target.run(np.ascontiguousarray(frame[..., ::-1]), color_order="BGR" if order == "RGB" else "RGB")
    assert all(np.array_equal(out[t], flipped[t]) for t in out)
