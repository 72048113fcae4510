"""Fuzzing the grouping file export reads (best.json): every damaged grouping is either refused
with a TaskgroupError naming the file, or read into a grouping whose invariants hold (each task
served once, positive costs and budget, checkpoints verified or refused), and the manifest's
selection block built from it records no negative or infinite prediction."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, strategies as st

from bundle_fixtures import make_grouping
from taskgroup_exporters.bundle import _selection_block
from taskgroup.train.store_integrity import verified_checkpoint_sha256
from taskgroup.grouping import Grouping
from fuzzing import dumps, fuzz, mutated
from taskgroup.cli.export import _check_profile_matches, _training_config
from taskgroup.errors import TaskgroupError


@pytest.fixture(scope="module")
def grouping_path(tmp_path_factory):
    path = make_grouping(tmp_path_factory.mktemp("fuzz-grouping"))
    doc = json.loads(path.read_text())
    doc["options"] = {"preset": "tiny", "resolution": 16, "losses": "../run/losses.json"}
    doc["budget"].update(input_shape=[1, 3, 16, 16], preset="tiny", backend_settings={"intra_op_num_threads": 2})
    doc["corun_factor"] = 1.05
    path.write_text(json.dumps(doc))
    return path


@fuzz(200)
@given(data=st.data())
def test_fuzzed_groupings_are_read_consistently_or_refused(grouping_path, data):
    doc = data.draw(mutated(json.loads(grouping_path.read_text())))
    path = grouping_path.with_name("fuzzed.json")
    path.write_text(dumps(doc))
    try:
        g = Grouping.load(path)
    except TaskgroupError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    served = [t for n in g.networks for t in n.served]
    assert sorted(served) == sorted(g.tasks) and len(set(served)) == len(served)
    for n in g.networks:
        assert set(n.served) <= set(n.tasks) and 0 < n.width <= 4
        assert n.cost is None or (math.isfinite(n.cost) and n.cost > 0)
    value = g.budget.value
    assert value is None or (math.isfinite(value) and value > 0)
    block = _selection_block(g).to_json()
    predicted = block["predicted_latency"]
    assert predicted is None or (math.isfinite(predicted["value"]) and predicted["value"] > 0)
    json.dumps(block, allow_nan=False)  # the manifest is written without NaN or infinity
    assert Grouping.from_json(g.to_json(), path) == g  # what was accepted is written back as it was read
    try:
        config, what = _training_config(g, None, None)  # no run above these checkpoints: the recorded preset
        _check_profile_matches(g, config.arch.resolution, what)
        for i, n in enumerate(g.networks):
            if n.checkpoint is not None and g.checkpoint_path(n).is_file():
                verified_checkpoint_sha256(g, i)
    except TaskgroupError as exc:
        assert "\n" not in str(exc)
    except OSError as exc:  # e.g. a checkpoint name too long for the file system; the CLI prints it in one line
        assert exc.filename
