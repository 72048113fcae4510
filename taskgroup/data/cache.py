"""The on-disk cache of one split: .npy arrays plus a manifest, built atomically, verified on open.

Layout: `<cache root>/<source>-<res>px-<hash>/<split>/` holding `manifest.json` and the
arrays (`images.npy`, one `<task>.npy` per target, `mask_*.npy`). A split is built in a
hidden temporary directory beside it and renamed into place only when complete, so a
killed build never leaves a partial split behind (stale `.tmp-*` directories are ignored).

On open the manifest is checked (kind, version, the config it was built from) and every
array's size and a CRC32 of its first and last MiB are compared with the manifest. A
mismatch is an error naming the file and telling the user to delete the directory; the
cache is never re-rendered over silently, because a damaged cache usually means a disk or
concurrency problem the user should see. The check is cheap, not a full integrity proof.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.fileio import read_json, require, write_json_atomic

KIND = "data_split"
SCHEMA_VERSION = 1
FORMAT_VERSION = 3  # bump when the renderer or an encoding changes: it changes every cache name
MANIFEST = "manifest.json"
_CHECK_BYTES = 1 << 20


def file_fingerprint(path: Path) -> dict[str, int]:
    """Size and CRC32 of the first and last MiB: catches truncation and damaged ends cheaply."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = zlib.crc32(f.read(_CHECK_BYTES))
        f.seek(max(0, size - _CHECK_BYTES))
        tail = zlib.crc32(f.read(_CHECK_BYTES))
    return {"size": size, "crc32_head": head, "crc32_tail": tail}


def write_manifest(directory: Path, doc: dict[str, Any]) -> None:
    """Fingerprint every array named in doc['tasks'] / images and write the manifest last."""
    files: dict[str, Any] = {}
    names = {"images.npy"} | {f for entry in doc["tasks"].values() for f in (entry["target"], entry["mask"])}
    for name in sorted(names):
        arr = np.load(directory / name, mmap_mode="r")
        files[name] = {"shape": list(arr.shape), "dtype": str(arr.dtype), **file_fingerprint(directory / name)}
        del arr
    write_json_atomic(directory / MANIFEST, {"kind": KIND, "schema_version": SCHEMA_VERSION, **doc, "files": files})


def build_atomically(final: Path, build: Callable[[Path], dict[str, Any]]) -> None:
    """Run build(tmp_dir) -> manifest fields, write the manifest, then rename tmp_dir onto `final`.

    The temporary directory's name carries the builder's process id, so a build killed with
    SIGKILL (which no `finally` survives) is recognised and removed by the next build.
    """
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TaskgroupError(f"data cache: cannot create {final.parent} ({exc.strerror}); set TASKGROUP_CACHE or "
                             "[data] cache_dir to a writable directory") from exc
    remove_stale_builds(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-{os.getpid()}-", dir=final.parent))
    try:
        doc = build(tmp)
        write_manifest(tmp, doc)
        os.chmod(tmp, 0o755)  # mkdtemp creates it private; the finished cache is an ordinary directory
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / MANIFEST).is_file():  # not a concurrent builder winning the race
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_builds(parent: Path) -> None:
    """Delete temporary build directories whose builder process no longer exists."""
    for tmp in parent.glob(".tmp-*-*-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if pid != os.getpid() and not _alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def load_manifest(directory: Path, expected_key: dict[str, Any]) -> dict[str, Any]:
    """Read and verify a split's manifest and arrays; errors name the file and how to fix it."""
    path = directory / MANIFEST
    fix = f"delete {directory} to rebuild it"
    if not path.is_file():
        raise TaskgroupError(f"data cache {directory} has no {MANIFEST} (empty or interrupted cache); {fix}")
    try:
        doc = read_json(path, KIND, (SCHEMA_VERSION,))
        key = require(doc, "config", dict, path)
        if key != expected_key:
            raise SchemaError(path, "config", "was built from a different data config than the one requested")
        tasks = require(doc, "tasks", dict, path)
        files = require(doc, "files", dict, path)
        require(doc, "count", int, path)
        for task, entry in tasks.items():
            for field in ("target", "mask"):
                if not isinstance(entry, dict) or entry.get(field) not in files:
                    raise SchemaError(path, f"tasks.{task}.{field}", "missing or names a file not listed in 'files'")
        if "images.npy" not in files:
            raise SchemaError(path, "files.images.npy", "missing")
        for name, info in files.items():
            if not isinstance(info, dict) or not all(k in info for k in ("shape", "dtype", "size", "crc32_head", "crc32_tail")):
                raise SchemaError(path, f"files.{name}", "expected shape, dtype, size, crc32_head, crc32_tail")
            file = directory / name
            if not file.is_file():
                raise TaskgroupError(f"data cache file {file} is missing; {fix}")
            got = file_fingerprint(file)
            if got != {k: info[k] for k in ("size", "crc32_head", "crc32_tail")}:
                raise TaskgroupError(f"data cache file {file} does not match its manifest "
                                     f"(size {got['size']} vs {info['size']} or checksum differs: corrupted); {fix}")
    except TaskgroupError as exc:
        if fix in str(exc):
            raise
        raise TaskgroupError(f"{exc}; {fix}") from None
    return doc


def open_array(directory: Path, name: str, info: dict[str, Any]) -> np.ndarray:
    """Memory-map one verified array and check it has the manifest's shape and dtype."""
    file = directory / name
    try:
        arr = np.load(file, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise TaskgroupError(f"data cache file {file} is not a readable .npy array ({exc}); delete {directory} to rebuild it") from exc
    if list(arr.shape) != list(info["shape"]) or str(arr.dtype) != info["dtype"]:
        raise TaskgroupError(f"data cache file {file} has shape {arr.shape} {arr.dtype}, manifest says "
                             f"{tuple(info['shape'])} {info['dtype']}; delete {directory} to rebuild it")
    return arr
