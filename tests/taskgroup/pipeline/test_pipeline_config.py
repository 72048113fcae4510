"""Pipeline options are checked before anything is written, and the baselines are built right."""

import pytest

from taskgroup.grouping import GroupingNetwork
from taskgroup.errors import TaskgroupError
from taskgroup.pipeline.baselines import Baseline, BaselineNetwork, independent_singles, one_network, random_groupings
from taskgroup.pipeline.config import PipelineConfig
from taskgroup.pipeline.run import Pipeline
from taskgroup.search import make_candidate


@pytest.mark.parametrize("options, message", [
    (dict(estimate="hao"), "unknown estimator 'hao'"),
    (dict(candidates="pair"), "unknown candidate set 'pair'"),
    (dict(preset="defualt"), "unknown preset 'defualt'"),
    (dict(esa=7.0), "--esa fraction must be in"),
    (dict(device="gpu"), "unknown device 'gpu'"),
    (dict(backend="openvino"), "unknown backend 'openvino'"),
    (dict(normalize="zscore"), "unknown normalisation 'zscore'"),
    (dict(budget_ms=1.0, budget_snt=1.0), "exactly one budget"),
    (dict(budget_ms=-1.0), "positive"),
    (dict(tasks=("normal",)), "at least two tasks"),
    (dict(candidates="pairs", estimate="base"), "estimates from the all-task network alone .* --candidates base"),
    (dict(candidates="base", estimate="hoa"), "--candidates base trains no pairs .* use --estimate base"),
    (dict(candidates="rounds", estimate="hoa"), "--candidates rounds trains no pairs .* use --estimate rounds"),
    (dict(candidates="rounds", estimate="tag"), "estimates from the affinity .* use it with --candidates affinity"),
    (dict(candidates="affinity", estimate="rounds"), "estimates from the early stage .* --candidates rounds"),
    (dict(candidates="rounds", estimate="rounds", normalize="single"), "--candidates rounds trains no single"),
    (dict(candidates="base", estimate="base", normalize="single"), "--candidates base trains no single"),
])
def test_bad_options_fail_before_the_run_directory_is_written(tmp_path, options, message):
    with pytest.raises(TaskgroupError, match=message):
        Pipeline(tmp_path / "run", PipelineConfig(**options))
    assert not (tmp_path / "run").exists()


def test_rounds_take_the_default_early_fraction_and_select_on_final_networks():
    config = PipelineConfig(candidates="rounds", estimate="rounds", preset="tiny")
    assert config.esa == 0.1 and PipelineConfig(candidates="rounds", estimate="rounds", esa=0.3).esa == 0.3
    assert config.to_json()["run_config"]["esa_fraction"] == 0.1


def test_a_refused_resume_leaves_nothing_in_a_directory_that_is_no_run(tmp_path):
    unrelated = tmp_path / "photos"
    unrelated.mkdir()
    (unrelated / "a.jpg").write_bytes(b"jpeg")
    with pytest.raises(TaskgroupError, match="nothing to resume"):
        Pipeline(unrelated, PipelineConfig(), resume=True, say=lambda _: None)
    assert [p.name for p in unrelated.iterdir()] == ["a.jpg"]  # no .lock file left behind


def _cost(width, tasks):  # trunk 1 per width unit, each served head 0.5
    return width + 0.5 * len(tasks)


def test_one_network_shrinks_to_half_width_when_full_does_not_fit():
    assert one_network(("a", "b"), 2.0, _cost).networks == (BaselineNetwork(("a", "b"), 1.0),)
    assert one_network(("a", "b"), 1.6, _cost).networks == (BaselineNetwork(("a", "b"), 0.5),)


def _single(task, width, loss, head_cost):
    """A single-task candidate costing its width plus `head_cost`."""
    return make_candidate((task,), width, {task: loss}, lambda w, t: (w, {x: head_cost for x in t}))


def test_independent_singles_is_the_best_fitting_set_or_the_cheapest_flagged():
    singles = [_single("normal", 1.0, 0.1, 0.5), _single("normal", 0.5, 0.2, 0.5), _single("rgb", 1.0, 0.3, 0.5),
               _single("rgb", 0.5, 0.35, 0.5)]
    fit = independent_singles(singles, ("normal", "rgb"), 2.5, "ms")
    assert set(fit.networks) == {BaselineNetwork(("normal",), 1.0), BaselineNetwork(("rgb",), 0.5)}
    over = independent_singles(singles, ("normal", "rgb"), 1.0, "ms")  # nothing fits: the cheapest, flagged by cost
    assert set(over.networks) == {BaselineNetwork(("normal",), 0.5), BaselineNetwork(("rgb",), 0.5)}
    with pytest.raises(TaskgroupError, match="no single-task network for 'rgb'"):
        independent_singles(singles[:2], ("normal", "rgb"), 1.0, "ms")


def test_random_groupings_partition_the_tasks_fit_and_are_distinct():
    tasks = ("a", "b", "c", "d")
    draws = random_groupings(tasks, 4.0, _cost, draws=3, seed=1)
    assert len(draws) == 3
    assert len({frozenset((n.tasks, n.width) for n in b.networks) for b in draws}) == 3
    for b in draws:
        assert sorted(t for n in b.networks for t in n.tasks) == sorted(tasks)
        assert b.cost(_cost) <= 4.0
    assert random_groupings(tasks, 4.0, _cost, draws=3, seed=1) == draws  # deterministic
    assert isinstance(draws[0], Baseline)


def test_random_groupings_skip_the_other_baselines():
    tasks = ("a", "b")
    singles = Baseline("independent singles", (BaselineNetwork(("a",), 1.0), BaselineNetwork(("b",), 1.0)))
    draws = random_groupings(tasks, 10.0, _cost, draws=10, seed=0, exclude=[singles])
    keys = {frozenset((n.tasks, n.width) for n in b.networks) for b in draws}
    assert frozenset({(("a",), 1.0), (("b",), 1.0)}) not in keys and len(keys) == len(draws)


def test_report_compares_on_the_normalised_objective_when_asked(tmp_path):
    from taskgroup.pipeline.report import write_report
    from taskgroup.pipeline.report_model import GroupingResult, ReportData
    from taskgroup.pipeline.report_text import comparison_notes

    chosen = GroupingResult("chosen", [GroupingNetwork(("a", "b"), ("a", "b"), 1.0)],
                            1.0, {"a": 1.0, "b": 0.10})
    other = GroupingResult("one network", [GroupingNetwork(("a", "b"), ("a", "b"), 0.5)],
                           0.5, {"a": 0.9, "b": 0.30})
    data = ReportData(tasks=["a", "b"], budget=1.0, budget_unit="ms", device="cpu", chosen=chosen, baselines=[other],
                      pairwise_gains={}, gains_split="test", frontier=[], latency={}, compute={}, machine="m")
    # plain sum: chosen 1.1 beats the baseline 1.2
    assert data.score(chosen) == pytest.approx(1.1) and data.score(other) == pytest.approx(1.2)
    assert not any("LOWER" in n for n in comparison_notes(data))
    data.test_scales = {"a": 1.0, "b": 0.1}  # b's losses are ten times smaller: normalised, b counts as much as a
    assert data.score(chosen) == pytest.approx(2.0) and data.score(other) == pytest.approx(3.9)
    data.test_scales = {"a": 0.1, "b": 1.0}
    assert data.score(other) < data.score(chosen)
    assert "LOWER normalised test objective" in comparison_notes(data)[0]
    text = write_report(tmp_path, data).read_text()
    assert "| normalised |" in text and "normalised test objective" in text


@pytest.fixture
def tiny_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKGROUP_CACHE", str(tmp_path / "cache"))


def test_config_file_errors_fail_before_the_run_directory_is_written(tmp_path, tiny_cache):
    bad = tmp_path / "bad.toml"
    bad.write_text('[arch.model_config]\nstem_channels = "x"\n')
    with pytest.raises(TaskgroupError, match="stem_channels|model_config"):
        Pipeline(tmp_path / "run", PipelineConfig(preset="tiny", config_file=str(bad)), say=lambda _: None)
    bad.write_text("[train]\nbatch_size = 100000\n")
    with pytest.raises(TaskgroupError, match="fewer than one batch"):
        Pipeline(tmp_path / "run", PipelineConfig(preset="tiny", config_file=str(bad)), say=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_resume_compares_the_config_file_contents_and_accepts_a_new_budget(tmp_path, tiny_cache):
    from taskgroup.fileio import read_json, write_json_atomic
    from taskgroup.pipeline.stages import STAGES
    from taskgroup.pipeline.state import STATE_FILE, STATE_VERSION

    cfg = tmp_path / "cfg.toml"
    cfg.write_text("[train]\nepochs = 2\n")
    run = tmp_path / "run"
    Pipeline(run, PipelineConfig(preset="tiny", config_file=str(cfg)), say=lambda _: None)
    state = read_json(run / STATE_FILE, "pipeline_state", (STATE_VERSION,))
    state["finished"] = {s: {"seconds": 0.0} for s in STAGES}  # as if the run had finished
    write_json_atomic(run / STATE_FILE, state)
    cfg.write_text("[train]\nepochs = 3\n")  # same path, other contents
    with pytest.raises(TaskgroupError, match="run_config.train.epochs"):
        Pipeline(run, PipelineConfig(preset="tiny", config_file=str(cfg)), resume=True, say=lambda _: None)
    cfg.write_text("[train]\nepochs = 2\n")
    said = []
    Pipeline(run, PipelineConfig(preset="tiny", config_file=str(cfg), budget_snt=2.0), resume=True, say=said.append)
    finished = read_json(run / STATE_FILE, "pipeline_state", (STATE_VERSION,))["finished"]
    assert set(finished) == {"profile", "candidates"}  # selection onwards is redone for the new budget
    assert any("budget changed" in s for s in said)


def test_independent_singles_use_the_runs_normalisation():
    singles = [_single("a", 1.0, 0.9, 0.0), _single("a", 0.5, 1.0, 0.0), _single("b", 1.0, 0.05, 0.0),
               _single("b", 0.5, 0.1, 0.0)]
    plain = independent_singles(singles, ("a", "b"), 1.5, "snt")
    assert set(plain.networks) == {BaselineNetwork(("a",), 1.0), BaselineNetwork(("b",), 0.5)}
    scaled = independent_singles(singles, ("a", "b"), 1.5, "snt", {"a": 1.0, "b": 0.1})
    assert set(scaled.networks) == {BaselineNetwork(("a",), 0.5), BaselineNetwork(("b",), 1.0)}


def test_the_state_document_names_seeds_and_top_k_only_when_used():
    from taskgroup.pipeline.config import PipelineConfig

    plain = PipelineConfig(preset="tiny").to_json()
    assert "seeds" not in plain and "top_k" not in plain  # what pipelines wrote before these options
    both = PipelineConfig(preset="tiny", seeds=(0, 1), top_k=3).to_json()
    assert both["seeds"] == [0, 1] and both["top_k"] == 3
    assert PipelineConfig(preset="tiny", top_k=2).to_json()["top_k"] == 2
    with pytest.raises(TaskgroupError, match="--top-k"):
        PipelineConfig(preset="tiny", top_k=0)


def test_the_within_noise_rule_holds_where_the_seed_noise_was_measured(tmp_path, monkeypatch):
    """The within-noise rule of selection: the preset's record, on the paper's tasks, fully trained networks
    (ESA's finalize too) and an objective whose noise was measured; a tolerance that shrinks with the seeds."""
    from types import SimpleNamespace

    from taskgroup.seednoise import for_preset

    def rule(stage="final", seeds=(0,), **options):
        options.setdefault("preset", "wide")
        pipeline = Pipeline(tmp_path / f"run{len(list(tmp_path.iterdir()))}", PipelineConfig(**options),
                            say=lambda _: None)
        monkeypatch.setattr(pipeline, "table", lambda: SimpleNamespace(seed_values=lambda: list(seeds)))
        return pipeline.within_noise(stage)

    within, off = rule()
    assert off == "" and within.record is for_preset("wide") and within.objective == "reference"
    assert within.seeds == 1 and rule(seeds=(0, 1, 2, 3))[0].seeds == 4
    assert rule(normalize="none")[0].objective == "none"
    assert rule(normalize="single") == (None, "the seed noise was measured for the objectives reference, none, not "
                                              "'single'")
    assert rule(preset="tiny")[0] is None and "no seed noise was measured" in rule(preset="tiny")[1]
    assert rule(tasks=("segment_semantic", "depth_zbuffer"))[0] is None
    assert rule("early", esa=0.2)[0] is None and "ESA" in rule("early", esa=0.2)[1]  # early losses: not measured
    assert rule("final", esa=0.2)[0] is not None  # ESA's finalize compares fully trained networks


def test_the_report_never_claims_hoa_estimates_on_a_two_task_run():
    from taskgroup.pipeline.report_assembly import selection_inputs

    assert selection_inputs("hoa", 2) == ("measured networks only (HOA estimates networks of 3+ tasks; a 2-task run "
                                          "has none)")
    assert selection_inputs("hoa", 3) == "HOA-estimated higher-order networks"
    assert selection_inputs(None, 5) == "measured networks only"
