"""Shared fixtures: small synthetic splits with the SplitArrays fields, and tiny run configs."""

from __future__ import annotations

import pytest

from fake_splits import fake_split


@pytest.fixture(scope="session")
def fake_splits():
    return fake_split(64, 1), fake_split(32, 2), fake_split(32, 3)


@pytest.fixture(scope="session")
def tiny_config_factory(tmp_path_factory):
    """make_run_config('tiny', ...) with the data cache in a per-session directory."""
    from taskgroup.train import make_run_config

    cache = str(tmp_path_factory.mktemp("data-cache"))

    def make(**kw):
        overrides = kw.pop("overrides", {})
        overrides = {**overrides, "data": {**overrides.get("data", {}), "cache_dir": cache}}
        return make_run_config("tiny", overrides=overrides, **kw)

    make.cache = cache
    return make
