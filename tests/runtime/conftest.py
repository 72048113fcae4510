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
    from exporters import export_bundle

    root = tmp_path_factory.mktemp("grouping")
    return export_bundle(make_grouping(root), root / "deploy", resolution=16)


@pytest.fixture
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, dst)
    return dst
