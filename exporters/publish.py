"""Publishing a finished bundle: the directory appears whole at its destination or not at all.

The exporter writes into a private temporary directory beside the destination; once every file
passed its checks, it gets the usual permissions and is renamed into place. `export --overwrite`
replaces only an earlier bundle (never a mistyped --out such as a run directory) and carries
over the files its manifest does not list, which are the user's.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from taskgroup.errors import TaskgroupError
from taskgroup.fileio import default_file_mode
from taskgroup_runtime.manifest import MANIFEST_KIND, MANIFEST_NAME


def make_publishable(bundle_dir: Path) -> None:
    """Temporary files are private (0600/0700); a published bundle gets the usual permissions."""
    mode = default_file_mode()
    bundle_dir.chmod(mode | ((mode & 0o444) >> 2))  # directories: read implies search (x)
    for p in bundle_dir.iterdir():
        p.chmod(mode)


def check_replaceable(out: Path) -> set[str]:
    """--overwrite replaces an earlier bundle or an empty directory, never anything else.

    A mistyped --out (the run directory, a home directory) must not be deleted: only a
    directory whose manifest.json says it is a bundle, and holding nothing but files, qualifies.
    Returns the names the earlier bundle consists of (its manifest and the files it lists):
    only these are replaced; anything else in the directory is the user's and is kept.
    """
    if out.is_symlink() or not out.is_dir():
        raise TaskgroupError(f"{out} exists and is not a directory; --overwrite only replaces a bundle directory")
    entries = list(out.iterdir())
    if not entries:
        return set()
    try:
        doc = json.loads((out / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("kind") != MANIFEST_KIND:
        raise TaskgroupError(f"{out} exists and is not a bundle (no {MANIFEST_NAME} of kind '{MANIFEST_KIND}'); "
                             "--overwrite only replaces an earlier bundle. Choose another --out")
    subdirs = [p.name for p in entries if p.is_dir() and not p.is_symlink()]
    if subdirs:
        raise TaskgroupError(f"{out} holds directories {subdirs}, which a bundle never does; not replacing it")
    listed = doc.get("files")
    if not isinstance(listed, dict):
        raise TaskgroupError(f"{out / MANIFEST_NAME}: field 'files': expected the bundle's file list; without it "
                             "the files the earlier export wrote cannot be told from others. Not replacing it")
    return {MANIFEST_NAME, *(str(name) for name in listed)}


def move_into_place(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished bundle onto `out`; an earlier bundle there is replaced as a whole, except
    for files its manifest does not list (a calibration file kept beside the models, notes), which
    are carried over unchanged into the new bundle directory."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not overwrite:
        raise TaskgroupError(f"{out} appeared during export; not overwriting it")
    owned = check_replaceable(out)
    kept = sorted(p for p in out.iterdir() if p.name not in owned)
    clash = [p.name for p in kept if os.path.lexists(tmp / p.name)]
    if clash:
        raise TaskgroupError(f"{out}: {clash} not listed by the earlier bundle's manifest, so not written by an export, "
                             "but the new bundle writes files of that name; move them away and export again")
    for p in kept:
        carry_over(p, tmp / p.name)
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, old / out.name)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def carry_over(src: Path, dst: Path) -> None:
    """Put a user's file into the new bundle directory unchanged: a hard link (same file, no copy),
    a symlink recreated as such, or a copy where the filesystem has no hard links."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
