"""The bundle manifest (manifest.json): the document, its reader, writer and the checks across its parts.

The exporter builds a `Manifest` and writes `Manifest.to_json()`; the runtime reads it with
`read_manifest` (`Manifest.from_json`), which checks the document (kind, schema version, its own
digest, that every network serves a task and every file it names is listed) and has each block
validate itself: the models' input, outputs, networks and files (`taskgroup_runtime.specs`) and
where the bundle came from (`taskgroup_runtime.provenance`). Everything a deployment needs to feed
the networks and interpret their outputs is in here, so robot code never needs taskgroup. A
manifest export wrote round-trips to the same JSON and digest; older ones load. Pure standard
library, so the runtime imports without torch or onnx; `verify_files` hashes the files it lists.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from taskgroup_runtime.errors import BundleError
from taskgroup_runtime.fields import required, unknown
from taskgroup_runtime.integrity import file_kind, safe_member, sha256_file
from taskgroup_runtime.provenance import BundleSelection, CreatedWith, TensorRTRecord, VerificationRecord
from taskgroup_runtime.specs import SUPPORTED_VERSIONS, FileEntry, InputSpec, NetworkFiles, TaskOutput

MANIFEST_NAME = "manifest.json"
MANIFEST_KIND = "bundle_manifest"


@dataclass(frozen=True)
class Manifest:
    path: Path | None  # where it was read from (None: built in memory)
    input: InputSpec
    tasks: dict[str, TaskOutput]
    networks: tuple[NetworkFiles, ...]
    files: dict[str, FileEntry]  # relative path -> digest and size, every model file of the bundle
    precision: str  # "fp32" or "fp16" (of the model files; inputs/outputs stay float32)
    selection: BundleSelection = field(default_factory=BundleSelection)  # budget, profile, device, predicted latency
    graph: str = "separate"  # "fused": one graph taking the frame; "separate": one model per network
    created: str | None = None  # when it was exported (UTC, ISO 8601)
    created_with: CreatedWith = field(default_factory=CreatedWith)  # library versions and exporter
    tensorrt: TensorRTRecord = field(default_factory=TensorRTRecord)  # whether engines were built, why not
    verification: VerificationRecord = field(default_factory=VerificationRecord)  # frames checked on, against what
    extra: dict[str, Any] = field(default_factory=dict)  # other fields of the document, as written
    content_sha256: str | None = field(default=None, compare=False)  # the digest it was sealed with

    @property
    def path_label(self) -> str:
        return str(self.path) if self.path is not None else MANIFEST_NAME

    @property
    def schema_version(self) -> int:
        """The oldest schema that holds this manifest: a uint8 frame input needs schema 2."""
        return self.input.schema_version

    @property
    def profiled_threads(self) -> int | None:
        """Intra-op threads per session the grouping's latency profile was measured with, if recorded.

        Running the bundle with the same setting makes its latency comparable with the prediction.
        """
        settings = self.selection.profiled_backend_settings
        threads = settings.intra_op_num_threads if settings is not None else None
        return threads if threads is not None and threads >= 1 else None

    def to_json(self) -> dict[str, Any]:
        """The sealed document: every part, then `content_sha256` over the rest."""
        doc: dict[str, Any] = {"kind": MANIFEST_KIND, "schema_version": self.schema_version}
        if self.created is not None:
            doc["created"] = self.created
        doc.update(created_with=self.created_with.to_json(), precision=self.precision, graph=self.graph,
                   input=self.input.to_json(), tasks={t: o.to_json() for t, o in self.tasks.items()},
                   networks=[n.to_json() for n in self.networks],
                   files={rel: {"sha256": e.sha256, "bytes": e.bytes} for rel, e in self.files.items()},
                   tensorrt=self.tensorrt.to_json(), selection=self.selection.to_json(),
                   verification=self.verification.to_json())
        doc.update(self.extra)
        doc["content_sha256"] = manifest_digest(doc)
        return doc

    @classmethod
    def from_json(cls, doc: Any, path: str | os.PathLike | None = None) -> "Manifest":
        """Validate a manifest document (no hashing of the files; see verify_files)."""
        return _parse(doc, Path(path) if path is not None else None)


# Files up to this size are hashed from the bytes that are then loaded (external weights files are
# passed to ONNX Runtime from memory too). ONNX's protobuf limit is 2 GiB, so every .onnx file
# qualifies; only larger weights files and engines are hashed on disk and read again by path.
IN_MEMORY_MAX_BYTES = 2 << 30


def manifest_digest(doc: dict[str, Any]) -> str:
    """sha256 of the manifest's content (canonical JSON, without the digest field itself).

    The model files are protected by their hashes in the manifest; this protects the
    manifest, so a changed task mapping or input spec is refused like a changed model.
    """
    body = {k: v for k, v in doc.items() if k != "content_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(bundle_dir: str | os.PathLike) -> Manifest:
    """Parse and validate manifest.json of a bundle directory (no hashing; see verify_files)."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: not a bundle directory (no such directory)")
    if not path.is_file():
        raise BundleError(f"{path}: missing; a bundle directory holds manifest.json written by `taskgroup export`")
    safe_member(bundle_dir, MANIFEST_NAME, MANIFEST_NAME, path)  # a manifest symlinked from outside is not this bundle's
    try:
        doc = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from exc
    return Manifest.from_json(doc, path)


_TYPED = ("kind", "schema_version", "content_sha256", "created", "created_with", "precision", "graph", "input",
          "tasks", "networks", "files", "tensorrt", "selection", "verification")


def _parse(doc: Any, path: Path | None) -> Manifest:
    where = path if path is not None else MANIFEST_NAME
    bundle_dir = path.parent if path is not None else Path(".")
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: field '<top level>': expected a JSON object")
    if doc.get("kind") != MANIFEST_KIND:
        raise BundleError(f"{where}: field 'kind': expected '{MANIFEST_KIND}', found {doc.get('kind')!r}")
    if doc.get("schema_version") not in SUPPORTED_VERSIONS or isinstance(doc.get("schema_version"), bool):
        raise BundleError(f"{where}: field 'schema_version': unsupported {doc.get('schema_version')!r}; "
                          f"supported: {list(SUPPORTED_VERSIONS)}")
    digest = doc.get("content_sha256")
    try:
        actual = manifest_digest(doc)
    except ValueError:  # NaN/infinity, which the exporter never writes
        actual = None
    if not isinstance(digest, str) or digest != actual:
        raise BundleError(f"{where}: field 'content_sha256': the manifest does not match its own digest "
                          "(edited or damaged after export)")
    input_spec = InputSpec.from_json(required(doc, "input", dict, "", where), doc["schema_version"], where)
    files = required(doc, "files", dict, "", where)
    entries: dict[str, FileEntry] = {}
    for rel, entry in files.items():
        safe_member(bundle_dir, rel, f"files.{rel}", where)
        sha = required(entry, "sha256", str, f"files.{rel}.", where) if isinstance(entry, dict) else None
        if not (isinstance(sha, str) and len(sha) == 64):
            raise BundleError(f"{where}: field 'files.{rel}.sha256': expected a 64-digit hex sha256")
        size = entry.get("bytes")
        entries[rel] = FileEntry(sha, size if isinstance(size, int) and not isinstance(size, bool) else None)
    networks = [NetworkFiles.from_json(net, i, files, bundle_dir, where) for i, net in enumerate(required(doc, "networks", list, "", where))]
    if not networks:
        raise BundleError(f"{where}: field 'networks': the bundle has no networks")
    tasks = {name: TaskOutput.from_json(name, t, networks, where) for name, t in required(doc, "tasks", dict, "", where).items()}
    if not tasks:
        raise BundleError(f"{where}: field 'tasks': the bundle serves no tasks")
    for i, net in enumerate(networks):
        # Every network runs on every frame: one that serves no task would cost time for nothing.
        mapped = [t for t, o in tasks.items() if o.network == i]
        if not mapped:
            raise BundleError(f"{where}: field 'networks[{i}]': network {net.name} serves no task in 'tasks'")
        if sorted(mapped) != sorted(net.tasks):
            raise BundleError(f"{where}: field 'networks[{i}].tasks': lists {list(net.tasks)}, but 'tasks' maps "
                              f"{mapped} to it")
    precision = required(doc, "precision", str, "", where)
    selection = BundleSelection.from_json(doc.get("selection") or {}, where)
    graph = doc.get("graph", "separate")
    if graph not in ("separate", "fused"):
        raise BundleError(f"{where}: field 'graph': expected 'separate' or 'fused', found {graph!r}")
    created_with = CreatedWith.from_json(doc.get("created_with"), where)
    created = doc.get("created")
    return Manifest(path, input_spec, tasks, tuple(networks), entries, precision, selection, graph,
                    created if isinstance(created, str) else None, created_with, TensorRTRecord.from_json(doc.get("tensorrt"), where),
                    VerificationRecord.from_json(doc.get("verification"), where), unknown(doc, _TYPED),
                    digest)


def verify_files(manifest: Manifest, keep: Iterable[str] | None = None) -> dict[str, bytes]:
    """Check every listed file exists and matches its sha256; return the verified bytes of small files.

    Returning the bytes that were hashed lets the runtime build sessions from exactly those
    bytes (no window between checking a file and loading it). `keep` names the files whose
    bytes are wanted (default: all); the others are hashed as a stream and not held in memory.
    """
    bundle_dir = manifest.path.parent
    wanted = None if keep is None else set(keep)
    data: dict[str, bytes] = {}
    for rel, entry in manifest.files.items():
        expected = entry.sha256
        full = safe_member(bundle_dir, rel, f"files.{rel}", manifest.path)
        if not full.is_file():  # never opened: reading a FIFO or a device could block forever
            what = "is missing" if not full.exists() else f"is not a regular file ({file_kind(full)})"
            raise BundleError(f"{bundle_dir}: file '{rel}' listed in manifest.json {what}")
        if (wanted is None or rel in wanted) and full.stat().st_size <= IN_MEMORY_MAX_BYTES:
            blob = full.read_bytes()
            actual = hashlib.sha256(blob).hexdigest()
            data[rel] = blob
        else:
            actual = sha256_file(full)
        if actual != expected:
            raise BundleError(f"{bundle_dir}: file '{rel}' does not match its sha256 in manifest.json "
                              f"(expected {expected[:12]}..., found {actual[:12]}...); the bundle is damaged or "
                              "was modified after export")
    return data
