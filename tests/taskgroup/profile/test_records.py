"""The profile document's typed records: committed profiles are written back byte for byte, older and
newer documents load (nulls and unknown fields kept), and a field of the wrong type is one clear error."""

import dataclasses
import json
from pathlib import Path

import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.profile import load_profile
from taskgroup.profile.costmodel import DeviceProfile
from taskgroup.profile.profiler import write_profile
from taskgroup.profile.provenance import DeviceRecord, LibraryVersions, OnnxExport, ProfileTiming

REPO = Path(__file__).resolve().parents[3]
PROFILES = sorted((REPO / "profiles").glob("*.json"))


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_committed_profiles_are_written_back_byte_for_byte(path, tmp_path):
    profile = load_profile(path)
    assert isinstance(profile.device, DeviceRecord) and profile.device.kind == "cpu" and profile.device.cpu_cores == 2
    assert isinstance(profile.libraries, LibraryVersions) and profile.libraries.get("onnxruntime") == "1.32.0"
    assert isinstance(profile.timing, ProfileTiming) and profile.timing.rounds == 5
    assert profile.onnx is None if profile.backend == "torch" else profile.onnx.opset == 18
    out = tmp_path / path.name
    write_profile(profile, out)
    assert json.loads(out.read_text()) == json.loads(path.read_text())
    assert out.read_bytes() == path.read_bytes()


def _doc():
    """The committed ONNX Runtime profile, without its backend settings (not this module's record)."""
    doc = next(d for d in (json.loads(p.read_text()) for p in PROFILES) if d["backend"] == "onnxruntime")
    del doc["backend_settings"]
    return doc


def test_nulls_and_fields_a_newer_writer_added_are_kept(tmp_path):
    doc = _doc()
    doc["device"] = {"kind": "cuda", "name": "cuda:0", "cpu_model": "x", "cpu_cores": None, "platform": "p",
                     "gpu_name": "NVIDIA H100", "gpu_memory_mb": 81000, "compute_capability": "9.0",
                     "cuda_runtime": "13.0", "driver": None, "pcie": "gen5"}
    doc["libraries"]["polygraphy"] = None
    doc["onnx"]["max_abs_diff_vs_torch"] = None
    doc["timing"]["jitter"] = [1, 2]
    profile = DeviceProfile.from_json(doc, "p.json")
    assert profile.device.driver is None and "driver" in profile.device.nulls
    assert profile.device.extra == {"pcie": "gen5"} and profile.timing.extra == {"jitter": [1, 2]}
    assert profile.device.label == "x"
    assert json.dumps(profile.to_json()) == json.dumps(doc)  # same fields, same order


def test_old_documents_without_the_records_load():
    doc = _doc()
    for key in ("libraries", "onnx", "timing", "requested_device", "fallback"):
        del doc[key]
    doc["device"] = {"kind": "cpu"}
    profile = DeviceProfile.from_json(doc, "old.json")
    assert profile.device == DeviceRecord(kind="cpu") and profile.libraries is profile.timing is None
    assert profile.to_json() == doc


def test_the_profiler_writes_every_described_field_even_when_unknown():
    record = DeviceRecord.written(kind="cuda", name="cuda:0", gpu_name="G", driver=None)
    assert record.to_json() == {"kind": "cuda", "name": "cuda:0", "gpu_name": "G", "driver": None}
    assert OnnxExport.written(exporter="e", opset=18, max_abs_diff_vs_torch=None).to_json() == {
        "exporter": "e", "opset": 18, "max_abs_diff_vs_torch": None}


@pytest.mark.parametrize("key, field, value, want", [
    ("device", "cpu_cores", "two", "field 'device.cpu_cores': expected int or null, found 'two'"),
    ("device", "kind", 1, "field 'device.kind': expected str or null, found 1"),
    ("libraries", "torch", 2.13, "field 'libraries.torch': expected str or null, found 2.13"),
    ("timing", "rounds", True, "field 'timing.rounds': expected int or null, found True"),
    ("timing", "interleaved", "yes", "field 'timing.interleaved': expected bool or null, found 'yes'"),
    ("onnx", "opset", 18.5, "field 'onnx.opset': expected int or null, found 18.5"),
])
def test_a_field_of_the_wrong_type_is_one_line_naming_file_field_and_fix(key, field, value, want):
    doc = _doc()
    doc[key][field] = value
    with pytest.raises(TaskgroupError) as err:
        DeviceProfile.from_json(doc, "bad.json")
    message = str(err.value)
    assert message.startswith(f"bad.json: {want}") and "\n" not in message
    assert message.endswith("correct the field, or measure the device again with `taskgroup profile`")


def test_a_record_that_is_not_an_object_is_refused():
    doc = _doc()
    doc["timing"] = [1]
    with pytest.raises(TaskgroupError, match=r"bad.json: field 'timing': expected dict or null, found \[1\]"):
        DeviceProfile.from_json(doc, "bad.json")


@pytest.mark.parametrize("record", [DeviceRecord, OnnxExport, ProfileTiming])
def test_each_record_declares_one_json_type_per_field(record):
    """A field added to the dataclass but not to TYPES (or the reverse) would be dropped on writing."""
    names = [f.name for f in dataclasses.fields(record) if f.name not in ("nulls", "extra")]
    assert names == list(record.TYPES)


def test_records_are_typed_and_write_the_objects_they_were_read_from():
    profile = DeviceProfile.from_json(_doc(), "p.json")
    assert profile.device.to_json() == _doc()["device"] and profile.timing.to_json() == _doc()["timing"]
    assert profile.libraries["onnxruntime"] == "1.32.0" and dict(profile.libraries) == _doc()["libraries"]
    assert profile.device != DeviceRecord(kind="cpu") and DeviceRecord(kind="cpu") != OnnxExport()
