"""File integrity and path safety: what a bundle, a training run and an export all check.

One implementation of the file hash (every recorded digest, in manifests, run stores and
groupings, is this function's output) and of the rule that a path named by a file stays inside
its folder. Standard library only: the robot's runtime depends on it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

from taskgroup_runtime.errors import BundleError


def sha256_bytes(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (engines and weights can be larger than memory allows)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def safe_member(bundle_dir: Path, rel: object, field_name: str, manifest_path: Path) -> Path:
    """Resolve a manifest path inside the bundle; refuse absolute paths, '..' and symlinks leaving it."""
    if not isinstance(rel, str) or not rel:
        raise BundleError(f"{manifest_path}: field '{field_name}': expected a relative file path, found {rel!r}")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or "\\" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise BundleError(f"{manifest_path}: field '{field_name}': absolute path {rel!r} is not allowed; "
                          "bundle paths are relative to the bundle directory")
    if ".." in pure.parts:
        raise BundleError(f"{manifest_path}: field '{field_name}': path {rel!r} contains '..'; "
                          "bundle paths must stay inside the bundle directory")
    root = bundle_dir.resolve()
    full = (root / pure).resolve()
    if full != root and root not in full.parents:
        raise BundleError(f"{manifest_path}: field '{field_name}': {rel!r} resolves to {full}, outside the "
                          f"bundle {root} (a symlink pointing out of the bundle?)")
    return full


def file_kind(path: Path) -> str:
    """What stands at `path` instead of a regular file, from its mode (never opened)."""
    mode = path.stat().st_mode
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"
