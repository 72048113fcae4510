"""Update strategies, loss weighting and per-task stopping: equivalences that must hold bit for bit,
independent optimiser state, learned weights stored with the run, config identity on resume."""

import dataclasses
import json
import math
import sqlite3

import numpy as np
import pytest
import torch

from taskgroup.errors import TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.train import CandidateSpec, make_run_config, train_candidates
from taskgroup.train.strategies import Updater, parse_strategy, partition
from taskgroup.train.trainer import RunData, build_model, evaluate, train_one
from taskgroup.train.weighting import LossWeighting, trivial_training_losses

TASKS = ("segment_semantic", "depth_zbuffer", "normal")


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def config(**train):
    return make_run_config("tiny", overrides={"train": {"epochs": 2, "batch_size": 16, **train}})


def same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def final(spec, data, **train):
    return train_one(spec, config(**train), data)["final"]


@pytest.mark.parametrize("strategy", ["alternating", "alternating-independent", "random-groups:3"])
def test_any_strategy_on_one_task_is_sum_bit_for_bit(data, strategy):
    spec = CandidateSpec(("normal",))
    base = final(spec, data)
    other = final(spec, data, strategy=strategy)
    assert same_state(base.state_dict, other.state_dict)
    assert base.losses == other.losses


def test_random_groups_of_one_is_sum_and_of_n_is_alternating(data):
    spec = CandidateSpec(TASKS)
    summed, alternating = final(spec, data), final(spec, data, strategy="alternating")
    assert not same_state(summed.state_dict, alternating.state_dict)  # the strategies do differ
    assert same_state(final(spec, data, strategy="random-groups:1").state_dict, summed.state_dict)
    for g in ("random-groups:3", "random-groups:5:epoch"):  # G >= n: one task per group, in task order
        assert same_state(final(spec, data, strategy=g).state_dict, alternating.state_dict), g
    two = final(spec, data, strategy="random-groups:2")
    assert not same_state(two.state_dict, summed.state_dict) and not same_state(two.state_dict, alternating.state_dict)


def test_partition_is_near_equal_ordered_and_seeded():
    tasks = ("a", "b", "c", "d", "e")
    groups = partition(tasks, 2, np.random.default_rng(0))
    assert sorted(len(g) for g in groups) == [2, 3]
    assert sorted(t for g in groups for t in g) == list(tasks)
    assert all(list(g) == sorted(g) for g in groups) and groups == sorted(groups, key=lambda g: g[0])
    assert partition(tasks, 9, np.random.default_rng(1)) == [(t,) for t in tasks]
    draws = {tuple(partition(tasks, 2, np.random.default_rng(s))) for s in range(20)}
    assert len(draws) > 1  # drawn at random


def test_shuffled_alternating_differs_from_fixed_order(data):
    spec = CandidateSpec(TASKS)
    fixed = final(spec, data, strategy="alternating")
    shuffled = final(spec, data, strategy="alternating:shuffled")
    assert not same_state(fixed.state_dict, shuffled.state_dict)
    again = final(spec, data, strategy="alternating:shuffled")
    assert same_state(shuffled.state_dict, again.state_dict)  # deterministic given the seed


def updater_for(data, strategy):
    cfg = config(strategy=strategy)
    torch.manual_seed(0)
    model = build_model(cfg, CandidateSpec(("depth_zbuffer", "normal")))
    model.train()
    weighting = LossWeighting.build("none", model.tasks)
    x, targets, masks = data.train.batch(torch.arange(16), model.tasks)
    return Updater(parse_strategy(strategy), model, model.tasks, cfg.train, weighting, 0), (x, targets, masks)


def momentum(opt, params):
    return [opt.state[p]["momentum_buffer"].clone() if p in opt.state else None for p in params]


def test_independent_optimizers_keep_each_tasks_moments_apart(data):
    up, batch = updater_for(data, "alternating-independent")
    trunk = [p for n, p in up.model.named_parameters() if n.startswith("trunk.")]
    opt_a, opt_b = up._by_task["depth_zbuffer"], up._by_task["normal"]
    up.step(*batch)  # one step per task: both have moments now
    before_b, before_a = momentum(opt_b, trunk), momentum(opt_a, trunk)
    assert all(b is not None for b in before_b)
    up.step_group(("depth_zbuffer",), *batch)
    assert all(torch.equal(x, y) for x, y in zip(momentum(opt_b, trunk), before_b))  # b's untouched
    assert not any(torch.equal(x, y) for x, y in zip(momentum(opt_a, trunk), before_a))  # a's moved
    head_b = [p for n, p in up.model.named_parameters() if n.startswith("heads.normal.")]
    assert not any(p in opt_a.state for p in head_b)  # a's optimiser never holds b's head


def test_shared_alternating_mixes_the_tasks_moments(data):
    up, batch = updater_for(data, "alternating")
    trunk = [p for n, p in up.model.named_parameters() if n.startswith("trunk.")]
    up.step_group(("depth_zbuffer",), *batch)
    after_a = momentum(up.optimizer, trunk)
    up.step_group(("normal",), *batch)
    assert not any(torch.equal(x, y) for x, y in zip(momentum(up.optimizer, trunk), after_a))


def test_a_step_on_one_task_leaves_the_other_head_alone(data):
    up, batch = updater_for(data, "alternating")
    head_b = {n: p.detach().clone() for n, p in up.model.named_parameters() if n.startswith("heads.normal.")}
    up.step_group(("depth_zbuffer",), *batch)
    assert all(torch.equal(p, head_b[n]) for n, p in up.model.named_parameters() if n in head_b)


def test_uncertainty_weights_are_learned_recorded_and_stored(tmp_path, data):
    r = final(CandidateSpec(TASKS), data, weighting="uncertainty")
    w = r.loss_weights
    assert w["weighting"] == "uncertainty" and set(w["log_variance"]) == set(TASKS)
    assert all(v != 0.0 for v in w["log_variance"].values())  # moved from where they started (weight 1)
    for t in TASKS:  # multiplier = a exp(-s): exp(-s) for L1 and cross-entropy
        assert w["multipliers"][t] == pytest.approx(math.exp(-w["log_variance"][t]), rel=1e-6)
    assert len(w["per_epoch"]) == 2
    cfg = make_run_config("tiny", overrides={"train": {"epochs": 2, "batch_size": 16, "weighting": "uncertainty"}})
    table = train_candidates(tmp_path / "run", TASKS, [CandidateSpec(TASKS)], cfg, data=data)
    stored = table.meta["loss_weights"][CandidateSpec(TASKS).name]["0"]["final"]
    assert stored == json.loads(json.dumps(r.loss_weights))  # the same training, recorded in the run
    again = LossTable.load(tmp_path / "run")
    assert again.meta["loss_weights"] == table.meta["loss_weights"]


def test_static_and_scale_weights_are_relative(data):
    weights = LossWeighting.build("static", ("depth_zbuffer", "normal"), task_weights={"depth_zbuffer": 3.0})
    assert weights.multipliers == {"depth_zbuffer": 1.5, "normal": 0.5}
    trivial = trivial_training_losses(data, TASKS)
    scale = LossWeighting.build("scale", TASKS, data)
    inverse = {t: 1 / trivial[t] for t in TASKS}
    mean = sum(inverse.values()) / 3
    assert scale.multipliers == pytest.approx({t: v / mean for t, v in inverse.items()})
    # the trivial loss is the training loss of the constant the heads start from (standardised space)
    from taskgroup.train.trainer import evaluate_both, init_output_bias

    model = build_model(config(), CandidateSpec(TASKS))
    for head in model.heads.values():
        torch.nn.init.zeros_([m for m in head.modules() if isinstance(m, torch.nn.Conv2d)][-1].weight)
    init_output_bias(model, data.standardized_constants())
    assert evaluate_both(model, data.train, TASKS)[1] == pytest.approx(trivial, rel=1e-5)
    # a single-task network weighs 1 under both, so it trains exactly as the plain sum
    spec = CandidateSpec(("depth_zbuffer",))
    base = final(spec, data)
    assert same_state(final(spec, data, weighting="scale").state_dict, base.state_dict)
    assert same_state(final(spec, data, weighting="static", task_weights={"depth_zbuffer": 5.0}).state_dict,
                      base.state_dict)


def test_per_task_stopping_keeps_each_tasks_best_epoch(data):
    epochs = 4
    r = final(CandidateSpec(TASKS), data, epochs=epochs, per_task_stopping=True, lr=0.3)
    assert set(r.task_stops) == set(TASKS)
    assert any(s.state_dict is not None for s in r.task_stops.values())  # some task peaks at another epoch
    cfg = config()
    model = build_model(cfg, CandidateSpec(TASKS))
    for t, stop in r.task_stops.items():
        assert 1 <= stop.epoch <= epochs
        assert (stop.state_dict is None) == (stop.epoch == r.best_epoch)
        model.load_state_dict(stop.state_dict if stop.state_dict is not None else r.state_dict)
        assert evaluate(model, data.test, TASKS) == pytest.approx(stop.losses["test"])
        # its own best: no other kept epoch has a lower validation loss for the task
        others = [s.losses["val"][t] for s in r.task_stops.values()] + [r.losses["val"][t]]
        assert stop.losses["val"][t] <= min(others) * (1 + 1e-9) or t == "normal"  # normal: 3 channels, std-weighted
    plain = final(CandidateSpec(TASKS), data, epochs=epochs, lr=0.3)
    assert same_state(plain.state_dict, r.state_dict) and plain.task_stops is None  # training unchanged
    assert final(CandidateSpec(("normal",)), data, per_task_stopping=True).task_stops is None  # one task: its own


def test_per_task_stops_are_stored_and_become_candidates_on_request(tmp_path, data):
    from taskgroup.search import candidates_from_table

    cfg = make_run_config("tiny", overrides={"train": {"epochs": 4, "batch_size": 16, "lr": 0.3,
                                                       "per_task_stopping": True}})
    specs = [CandidateSpec(TASKS), CandidateSpec(("normal",))]
    table = train_candidates(tmp_path / "run", TASKS, specs, cfg, data=data)
    con = sqlite3.connect(tmp_path / "run" / "runs.sqlite")
    rows = con.execute("SELECT task, epoch, checkpoint FROM task_stops").fetchall()
    con.close()
    assert {r[0] for r in rows} == set(TASKS)  # the multi-task network only
    own = [r for r in rows if not r[2].endswith("_final.pt")]
    assert own and {s.stopped_for for s in table.task_stops} == {r[0] for r in own}
    for s in table.task_stops:
        assert (tmp_path / "run" / s.checkpoint).is_file() and s.wall_time_s is None
    loaded = LossTable.load(tmp_path / "run")
    assert [s.key for s in loaded.task_stops] == [s.key for s in table.task_stops]
    plain = candidates_from_table(loaded, "val")
    assert all(c.stopped_for is None for c in plain)  # not unless asked
    more = candidates_from_table(loaded, "val", per_task_stopping=True)
    assert len(more) == len(plain) + len(table.task_stops)
    assert len({c.key for c in more}) == len(more)


def test_a_run_s_strategy_is_part_of_its_config(tmp_path, data):
    run = tmp_path / "run"
    spec = [CandidateSpec(("depth_zbuffer",))]
    train_candidates(run, TASKS, spec, config(), data=data)
    for field, value in [("strategy", "alternating"), ("weighting", "scale"), ("per_task_stopping", True)]:
        with pytest.raises(TaskgroupError, match=f"refusing to resume.*{field}"):
            train_candidates(run, TASKS, spec, config(**{field: value}), data=data, resume=True)
    train_candidates(run, TASKS, spec, config(), data=data, resume=True)  # the same config resumes


def test_a_run_from_before_strategies_resumes(tmp_path, data):
    run = tmp_path / "run"
    spec = [CandidateSpec(("depth_zbuffer",))]
    train_candidates(run, TASKS, spec, config(), data=data)
    con = sqlite3.connect(run / "runs.sqlite")
    doc = json.loads(con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    for key in ("strategy", "weighting", "task_weights", "per_task_stopping"):
        del doc["train"][key]
    with con:
        con.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(doc),))
    con.close()
    train_candidates(run, TASKS, spec, config(), data=data, resume=True)
    with pytest.raises(TaskgroupError, match="strategy"):
        train_candidates(run, TASKS, spec, config(strategy="alternating"), data=data, resume=True)


def test_affinity_tracking_is_refused_for_step_per_task_strategies(tmp_path, data):
    with pytest.raises(TaskgroupError, match='needs \\[train\\] strategy = "sum"'):
        train_one(CandidateSpec(TASKS), config(strategy="alternating"), data, affinity=True)
    with pytest.raises(TaskgroupError, match="strategy"):
        train_candidates(tmp_path / "run", TASKS, [], config(strategy="random-groups:2"), data=data, affinity=True)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_affinity_with_weights_measures_the_weighted_step(data):
    r = train_one(CandidateSpec(TASKS), config(weighting="scale"), data, affinity=True)["final"]
    plain = train_one(CandidateSpec(TASKS), config(weighting="scale"), data)["final"]
    assert same_state(r.state_dict, plain.state_dict)  # measuring changes nothing
    assert r.affinity["steps"] > 0


@pytest.mark.parametrize("text,needle", [
    ('strategy = "alternate"', "field 'strategy': unknown strategy 'alternate'"),
    ('strategy = "random-groups:0"', "number of groups must be a positive integer"),
    ('strategy = "random-groups:2:batch"', "unknown strategy"),
    ('weighting = "kendall"', "field 'weighting': unknown weighting 'kendall'"),
    ('weighting = "static"', "weighting 'static' needs a weight per task"),
    ('task_weights = { normal = 2.0 }', "used only with weighting = 'static'"),
    ('weighting = "static"\ntask_weights = { normal = -1 }', "weight of 'normal' must be a positive number"),
    ('task_weights = 3', "key 'task_weights': expected a table"),
    ('per_task_stopping = 1', "key 'per_task_stopping': expected true or false"),
])
def test_bad_strategy_settings_name_the_file_and_field(tmp_path, text, needle):
    path = tmp_path / "cfg.toml"
    path.write_text(f"[train]\n{text}\n")
    with pytest.raises(TaskgroupError) as err:
        make_run_config("tiny", path)
    assert needle in str(err.value) and str(path) in str(err.value)


def test_static_weights_must_name_the_run_s_tasks(tmp_path, data):
    cfg = config(weighting="static", task_weights={"normals": 2.0})
    with pytest.raises(TaskgroupError, match="'normals' not among the run's tasks"):
        train_candidates(tmp_path / "run", TASKS, [CandidateSpec(("normal",))], cfg, data=data)
    assert not (tmp_path / "run").exists()


def test_parse_strategy_round_trips():
    for text in ("sum", "alternating", "alternating:shuffled", "alternating-independent",
                 "alternating-independent:shuffled", "random-groups:2", "random-groups:3:epoch"):
        assert parse_strategy(text).text == text
    assert dataclasses.asdict(parse_strategy("random-groups:2:epoch"))["per_epoch"]


def test_two_epochs_of_one_network_cost_two_networks():
    from taskgroup.losstable import NetworkResult
    from taskgroup.search import candidates_from_table, select

    pair = ("depth_zbuffer", "normal")

    def net(losses, stop=None):
        return NetworkResult(pair, 1.0, "final", {"val": dict(zip(pair, losses))}, checkpoint=f"c{stop}.pt",
                             stopped_for=stop)

    table = LossTable(pair, [net((1.0, 1.0))], {}, {}, None,
                      [net((0.8, 1.1), "depth_zbuffer"), net((1.1, 0.8), "normal")])
    cands = candidates_from_table(table, "val", per_task_stopping=True)
    one = select(cands, 1.0, tasks=pair)  # one trunk: the best single epoch serves both
    assert [(n.candidate.stopped_for, tuple(n.served)) for n in one.networks] == [("depth_zbuffer", pair)]
    assert one.cost == 1.0 and one.objective == pytest.approx(1.9)
    two = select(cands, 2.0, tasks=pair)  # each task from its own epoch: two trunks
    assert sorted((n.candidate.stopped_for, tuple(n.served)) for n in two.networks) == [
        ("depth_zbuffer", ("depth_zbuffer",)), ("normal", ("normal",))]
    assert two.cost == 2.0 and two.objective == pytest.approx(1.6)
    doc = two.to_grouping_json()
    assert sorted(n["stopped_for"] for n in doc["networks"]) == list(pair)
    with pytest.raises(TaskgroupError, match="no per-task stops"):
        candidates_from_table(LossTable(pair, [net((1.0, 1.0))], {}, {}), "val", per_task_stopping=True)


@pytest.mark.slow
def test_export_records_the_epoch_of_each_network(tmp_path, data):
    from taskgroup.train.store_integrity import verified_checkpoint_sha256
    from taskgroup_exporters import export_bundle
    from taskgroup.search import candidates_from_table, select

    cfg = make_run_config("tiny", overrides={"train": {"epochs": 4, "batch_size": 16, "lr": 0.3,
                                                       "per_task_stopping": True}})
    table = train_candidates(tmp_path / "run", TASKS, [CandidateSpec(TASKS)], cfg, data=data)
    stops = {s.stopped_for: s for s in table.task_stops}
    assert stops
    cands = candidates_from_table(table, "val", per_task_stopping=True)
    sel = select(cands, 2.0, tasks=TASKS)
    assert any(n.candidate.stopped_for for n in sel.networks)
    grouping = tmp_path / "best.json"
    grouping.write_text(json.dumps(sel.to_grouping_json(grouping, tmp_path / "run")))
    con = sqlite3.connect(tmp_path / "run" / "runs.sqlite")
    epochs = {t: e for t, e in con.execute("SELECT task, epoch FROM task_stops")}
    best_epoch = con.execute("SELECT best_epoch FROM results").fetchone()[0]
    con.close()
    # A run's checkpoints are verified against the digests its store recorded, as `taskgroup export` does.
    separate = export_bundle(grouping, tmp_path / "separate", resolution=16, fuse=False,
                             verify_checkpoint=verified_checkpoint_sha256)
    fused = export_bundle(grouping, tmp_path / "fused", resolution=16, fuse=True,
                          verify_checkpoint=verified_checkpoint_sha256)
    networks = json.loads((separate / "manifest.json").read_text())["networks"]
    (fused_net,) = json.loads((fused / "manifest.json").read_text())["networks"]
    assert len(networks) == len(fused_net["fused_from"]) == len(sel.networks)
    for net, inside, chosen in zip(networks, fused_net["fused_from"], sel.networks):
        stop = chosen.candidate.stopped_for
        for entry in (net, inside):
            assert entry.get("stopped_for") == stop
            assert entry["epoch"] == (epochs[stop] if stop else best_epoch)


def hand_loop(data, spec, per_task: bool):
    """One epoch written out: the recipe's step on the summed loss, or one step per task in task order."""
    from taskgroup.train.losses import loss_mean
    from taskgroup.train.trainer import init_output_bias

    cfg = config(epochs=1)
    tc = cfg.train
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg, spec)
        init_output_bias(model, data.standardized_constants())
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
        order = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(data.train)))
        for i in range(len(data.train) // tc.batch_size):
            x, targets, masks = data.train.batch(order[i * tc.batch_size:(i + 1) * tc.batch_size], spec.tasks)
            for group in ([(t,) for t in spec.tasks] if per_task else [spec.tasks]):
                out = model(x, tasks=group)
                loss = sum(loss_mean(t, out[t], targets[t], masks[t]) for t in group)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(previous)
    return {k: v.detach() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("strategy", ["sum", "alternating"])
def test_strategies_are_the_loops_they_describe(data, strategy):
    spec = CandidateSpec(TASKS)
    trained = train_one(spec, config(epochs=1, strategy=strategy), data)["final"].state_dict
    assert same_state(trained, hand_loop(data, spec, per_task=strategy == "alternating"))
