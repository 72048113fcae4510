"""Runtime tests share one exported tiny bundle (export takes seconds); tests that damage a
bundle work on their own copy."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "exporters"))

from bundle_fixtures import make_grouping  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """Two networks as separate models (export --no-fuse): net0.onnx, net1.onnx."""
    from taskgroup_exporters import export_bundle

    root = tmp_path_factory.mktemp("grouping")
    return export_bundle(make_grouping(root), root / "deploy", resolution=16, fuse=False)


@pytest.fixture(scope="session")
def fused_bundle(tiny_bundle, tmp_path_factory) -> Path:
    """The same two networks merged into one graph taking the uint8 frame (export's default)."""
    from taskgroup_exporters import export_bundle

    return export_bundle(tiny_bundle.parent / "best.json", tmp_path_factory.mktemp("fused") / "deploy", resolution=16,
                         fuse=True)


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst
