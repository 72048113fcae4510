"""The preset's seed-noise record: derived exactly from the committed benchmark, the paired spread of
a pair of groupings against one grouping's, the bound for pairs not measured, and where it applies."""

import json
import math
import statistics
from pathlib import Path

import pytest

from taskgroup.errors import SchemaError
from taskgroup.seednoise import RECORDS, SeedNoise, for_preset, record_from_benchmark
from taskgroup.train.recipes import same_recipe, seed_noise_for as for_run, shipped_preset
from taskgroup.train import make_run_config

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "results" / "seed_noise.json"
S, D, N, K, E = "segment_semantic", "depth_zbuffer", "normal", "keypoints2d", "edge_texture"
ONE = [((S, D, N, K, E), 1.0, (S, D, N, K, E))]
SINGLES = [((t,), 1.0, (t,)) for t in (S, D, N, K, E)]
SDNK_E = [((S, D, N, K), 1.0, (S, D, N, K)), ((E,), 0.5, (E,))]
UNMEASURED = [((S, D), 1.0, (S, D)), ((N, K, E), 1.0, (N, K, E)), ((E,), 0.5, (E,))]


@pytest.fixture(scope="module")
def bench():
    return json.loads(BENCH.read_text())


def per_seed(bench, name, key="test_normalised_per_seed"):
    return [bench["groupings"][name][key][str(s)] for s in bench["seeds"]]


def test_the_committed_default_record_is_the_committed_benchmark(bench):
    record = for_preset("wide")
    derived = record_from_benchmark(bench, "benchmarks/results/seed_noise.json", shipped_preset(bench["run_config"]))
    assert record.to_json() == derived.to_json()  # nothing typed in by hand
    assert record.source.startswith("benchmarks/results/seed_noise.json") and record.split == "test"
    # the pipeline's choice equals one network: it counts once
    assert [g.name for g in record.groupings].count("one network") == 1 and len(record.groupings) == 6


def test_paired_spread_one_groupings_spread_and_the_bound(bench):
    record = for_preset("wide")
    # full-width singles vs sdnk + e/2: 0.0213 apart, paired spread 0.0044 (one grouping's is 0.018)
    a, b = per_seed(bench, "independent singles (full)"), per_seed(bench, "sdnk + e/2")
    pair = record.pair("reference", SINGLES, SDNK_E)
    assert pair.std == pytest.approx(statistics.stdev([x - y for x, y in zip(a, b)]), rel=1e-12)
    assert pair.std == pytest.approx(0.0044, abs=5e-5) and pair.df == 2 and pair.basis == "paired"
    assert record.pair("reference", SDNK_E, SINGLES) == pair  # either order
    names = [g.name for g in record.groupings]
    variances = [statistics.variance(per_seed(bench, n)) for n in names]
    one = record.one_grouping("reference")
    assert one.std == pytest.approx(math.sqrt(sum(variances) / len(variances)), rel=1e-12) and one.df == 12
    assert record.independent("reference").std == pytest.approx(math.sqrt(2) * one.std)
    spreads = [s.std for s in record.paired("reference").values()]
    assert len(spreads) == 15 and min(spreads) == pytest.approx(0.0044, abs=5e-5)
    bound = record.pair("reference", SINGLES, UNMEASURED)  # one of them not measured
    assert bound.basis == "bound" and bound.std == pytest.approx(max(spreads)) == pytest.approx(0.0443, abs=5e-5)
    assert record.pair("none", SINGLES, SDNK_E).std != pair.std  # the plain sum has its own spreads
    assert record.measured(SDNK_E) == "sdnk + e/2" and record.measured(UNMEASURED) is None


def test_the_record_applies_to_the_recipe_it_measured_only():
    record = for_preset("wide")
    assert for_run("wide", make_run_config("wide", seed=4)) is record
    assert for_run("wide", make_run_config("wide", esa_fraction=0.3)) is record
    # train fields added after the measurement, at their default (the behaviour it measured): applies
    assert "strategy" not in record.run_config["train"] and same_recipe(record.run_config, make_run_config("wide").to_dict())
    assert for_run("wide", make_run_config("wide", overrides={"train": {"strategy": "alternating"}})) is None
    assert for_run("wide", make_run_config("wide", overrides={"train": {"epochs": 3}})) is None
    assert for_run("tiny", make_run_config("tiny")) is None  # never measured
    assert not (RECORDS / "tiny.json").exists()


def test_a_damaged_record_names_the_file_and_field(tmp_path):
    doc = for_preset("wide").to_json()
    doc["groupings"][1]["per_seed"]["normalised"] = [1.0, 2.0]
    path = tmp_path / "default.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"default.json: field 'groupings\[1\].per_seed.normalised': expected 3"):
        SeedNoise.load(path)
    doc = for_preset("wide").to_json()
    doc["groupings"][2]["networks"] = doc["groupings"][0]["networks"]
    path.write_text(json.dumps(doc))
    with pytest.raises(SchemaError, match=r"groupings\[2\]'.*listed twice"):
        SeedNoise.load(path)
