"""One-run inter-task affinity: the lookahead is the optimizer's own next step, measuring it
changes nothing in the real run, and the affinity is stored with the run and read back."""

import copy
import dataclasses
import json
import sqlite3

import numpy as np
import pytest
import torch

from taskgroup.affinity import AffinityTable
from taskgroup.errors import SchemaError, TaskgroupError
from taskgroup.losstable import LossTable
from taskgroup.train import CandidateSpec, candidate_set, make_run_config, train_candidates
from taskgroup.train.affinity import AffinityTracker, sgd_lookahead, shared_parameters
from taskgroup.train.losses import loss_mean
from taskgroup.train.trainer import RunData, build_model, train_one

TASKS = ("segment_semantic", "depth_zbuffer", "normal")


@pytest.fixture(autouse=True)
def one_thread():
    """As train_one runs (threads = 1): the direct loops below are then as fast on a shared machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def config(**train):
    return make_run_config("tiny", overrides={"train": {"epochs": 3, "batch_size": 16, **train}})


def setup(data, seed=0, **sgd):
    """A fresh all-task network and its optimizer, as train_one builds them."""
    cfg = config()
    torch.manual_seed(seed)
    model = build_model(cfg, CandidateSpec(TASKS))
    model.train()
    kw = dict(lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay) | sgd
    return model, torch.optim.SGD(model.parameters(), **kw)


def batches(data, n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield data.train.batch(torch.from_numpy(rng.choice(len(data.train), size, replace=False)), TASKS)


def forward_losses(model, x, targets, masks):
    out = model(x)
    return {t: loss_mean(t, out[t], targets[t], masks[t]) for t in TASKS}


def real_step(model, optimizer, x, targets, masks, tracker=None):
    losses = forward_losses(model, x, targets, masks)
    if tracker is not None:
        tracker.measure(x, losses, lambda o: {t: loss_mean(t, o[t], targets[t], masks[t]) for t in TASKS})
    optimizer.zero_grad(set_to_none=True)
    sum(losses.values()).backward()
    optimizer.step()


def snapshot(model, optimizer):
    """Everything a measurement must leave untouched: weights, BatchNorm buffers, optimizer state, RNG."""
    state = {k: v.clone() for k, v in model.state_dict(keep_vars=False).items()}
    opt = copy.deepcopy(optimizer.state_dict())
    return state, opt, torch.get_rng_state().clone()


def assert_same(a, b):
    (sa, oa, ra), (sb, ob, rb) = a, b
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert oa["param_groups"] == ob["param_groups"]
    assert oa["state"].keys() == ob["state"].keys()
    for i in oa["state"]:
        assert torch.equal(oa["state"][i]["momentum_buffer"], ob["state"][i]["momentum_buffer"]), i
    assert torch.equal(ra, rb)


@pytest.mark.parametrize("sgd", [{}, dict(nesterov=True), dict(dampening=0.3), dict(momentum=0.0),
                                 dict(weight_decay=0.0, maximize=True)], ids=["paper", "nesterov", "dampening",
                                                                             "no-momentum", "maximize"])
@pytest.mark.parametrize("warm_steps", [0, 3], ids=["first-step", "with-momentum-buffers"])
def test_lookahead_is_the_step_the_optimizer_takes_next(data, sgd, warm_steps):
    model, optimizer = setup(data, **sgd)
    it = batches(data, warm_steps + 1)
    for _ in range(warm_steps):
        real_step(model, optimizer, *next(it))
    x, targets, masks = next(it)
    names, params = zip(*shared_parameters(model))
    assert all(not n.startswith("heads.") for n in names) and "trunk.stem.0.weight" in names
    losses = forward_losses(model, x, targets, masks)
    total = sum(losses.values())
    grads = torch.autograd.grad(total, params, retain_graph=True)
    before = snapshot(model, optimizer)
    predicted = sgd_lookahead(optimizer, params, grads)
    assert_same(before, snapshot(model, optimizer))  # computing it changed nothing
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    for name, p, q in zip(names, params, predicted):
        assert torch.equal(p.detach(), q), name  # bit for bit: same arithmetic in the same order


def test_lookahead_includes_momentum_and_weight_decay(data):
    """Leaving out the momentum buffer (as TAG's published code does) or weight decay gives another step."""
    model, optimizer = setup(data)
    it = batches(data, 4)
    for _ in range(3):
        real_step(model, optimizer, *next(it))
    x, targets, masks = next(it)
    _, params = zip(*shared_parameters(model))
    grads = torch.autograd.grad(sum(forward_losses(model, x, targets, masks).values()), params)
    full = sgd_lookahead(optimizer, params, grads)
    lr, wd = optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["weight_decay"]
    params = [p.detach() for p in params]
    no_momentum = [p - lr * (g + wd * p) for p, g in zip(params, grads)]
    moved = sum(float((f - p).abs().sum()) for f, p in zip(full, params))
    gap = sum(float((f - n).abs().sum()) for f, n in zip(full, no_momentum))
    assert gap > 0.1 * moved
    # ... and that step is the `tag-nomomentum` lookahead
    plain = sgd_lookahead(optimizer, [p for _, p in shared_parameters(model)], grads, with_momentum=False)
    for n, q in zip(no_momentum, plain):
        assert torch.allclose(n, q, rtol=0, atol=1e-7)


def test_measuring_leaves_the_run_bit_identical(data):
    """Two runs from the same seed on the same batches, one measuring affinity at every step:
    weights, BatchNorm running statistics, momentum buffers and the RNG stay identical."""
    a = setup(data)
    b = setup(data)
    tracker = AffinityTracker(*b, TASKS, every=1)
    for x, targets, masks in batches(data, 5):
        real_step(*a, x, targets, masks)
        before = snapshot(*b)
        losses = forward_losses(b[0], x, targets, masks)
        after_forward = snapshot(*b)
        tracker.measure(x, losses, lambda o: {t: loss_mean(t, o[t], targets[t], masks[t]) for t in TASKS})
        assert_same(after_forward, snapshot(*b))  # the measurement itself touches nothing
        b[1].zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        b[1].step()
        assert not all(torch.equal(u, v) for u, v in zip(before[0].values(), snapshot(*b)[0].values()))
    assert_same(snapshot(*a), snapshot(*b))
    assert tracker.steps == 5


def test_affinity_is_the_loss_change_of_a_real_sgd_step_on_one_task(data):
    """Reference: a copy of network and optimizer takes a real SGD step on L_i (heads frozen) and
    evaluates every task on the same batch in train mode, as the lookahead does."""
    model, optimizer = setup(data)
    it = batches(data, 3)
    for _ in range(2):
        real_step(model, optimizer, *next(it))
    x, targets, masks = next(it)
    tracker = AffinityTracker(model, optimizer, TASKS, every=1)
    losses = forward_losses(model, x, targets, masks)
    current = {t: float(v.detach()) for t, v in losses.items()}
    tracker.measure(x, losses, lambda o: {t: loss_mean(t, o[t], targets[t], masks[t]) for t in TASKS})
    got = tracker.result()
    for i, source in enumerate(TASKS):
        m, opt = copy.deepcopy((model, optimizer))
        loss = forward_losses(m, x, targets, masks)[source]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in m.named_parameters():
            if name.startswith("heads."):
                p.grad = None  # SGD skips them: only the shared trunk moves
        opt.step()
        with torch.no_grad():
            after = forward_losses(m, x, targets, masks)
        for j, target in enumerate(TASKS):
            assert got["tag"][i][j] == pytest.approx(1 - float(after[target]) / current[target], rel=1e-5, abs=1e-9)
    cos = np.array(got["cosine"])
    assert np.allclose(np.diag(cos), 1.0) and np.allclose(cos, cos.T) and (np.abs(cos) <= 1 + 1e-12).all()
    # a task's own step lowers its own loss
    assert all(got["tag"][i][i] > 0 for i in range(len(TASKS)))


def test_affinity_without_momentum_is_the_loss_change_of_a_momentum_free_step(data):
    """`tag-nomomentum`: a copy of the network takes a real SGD step on L_i with momentum 0 (same
    learning rate and weight decay) from the same weights; the tracker's row i is its loss change."""
    model, optimizer = setup(data)
    it = batches(data, 4)
    for _ in range(3):
        real_step(model, optimizer, *next(it))  # momentum buffers are full
    x, targets, masks = next(it)
    tracker = AffinityTracker(model, optimizer, TASKS, every=1)
    losses = forward_losses(model, x, targets, masks)
    current = {t: float(v.detach()) for t, v in losses.items()}
    tracker.measure(x, losses, lambda o: {t: loss_mean(t, o[t], targets[t], masks[t]) for t in TASKS})
    got = tracker.result()
    group = optimizer.param_groups[0]
    for i, source in enumerate(TASKS):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=group["lr"], momentum=0.0, weight_decay=group["weight_decay"])
        loss = forward_losses(m, x, targets, masks)[source]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for name, p in m.named_parameters():
            if name.startswith("heads."):
                p.grad = None
        opt.step()
        with torch.no_grad():
            after = forward_losses(m, x, targets, masks)
        for j, target in enumerate(TASKS):
            assert got["tag-nomomentum"][i][j] == pytest.approx(1 - float(after[target]) / current[target],
                                                                rel=1e-5, abs=1e-9)
    # the two lookaheads differ once momentum has built up
    assert not np.allclose(got["tag"], got["tag-nomomentum"], rtol=0.05, atol=0)


def test_train_one_with_affinity_trains_the_same_network(data):
    cfg = dataclasses.replace(config(affinity_every=3), esa_fraction=0.4)
    spec = CandidateSpec(TASKS)
    plain = train_one(spec, cfg, data, stages=("early", "final"))
    tracked = train_one(spec, cfg, data, stages=("early", "final"), affinity=True)
    for stage in ("early", "final"):
        a, b = plain[stage], tracked[stage]
        assert a.losses == b.losses and a.best_epoch == b.best_epoch
        assert a.state_dict.keys() == b.state_dict.keys()
        assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)  # BN buffers included
        assert a.affinity is None
    steps = tracked["final"].steps
    assert tracked["final"].affinity["steps"] == len(range(0, steps, 3))
    assert tracked["early"].affinity["steps"] == len(range(0, tracked["early"].steps, 3))
    assert tracked["final"].affinity["every"] == 3 and tracked["final"].affinity["seconds"] > 0


def test_affinity_needs_two_tasks_and_a_valid_period(data):
    model, optimizer = setup(data)
    with pytest.raises(TaskgroupError, match="at least two tasks"):
        AffinityTracker(model, optimizer, TASKS[:1], every=1)
    with pytest.raises(TaskgroupError, match="affinity_every"):
        AffinityTracker(model, optimizer, TASKS, every=0)
    with pytest.raises(TaskgroupError, match="affinity_every"):
        make_run_config("tiny", overrides={"train": {"affinity_every": 0}})
    adam = torch.optim.Adam(model.parameters())
    with pytest.raises(TaskgroupError, match="SGD only"):
        sgd_lookahead(adam, [p for _, p in shared_parameters(model)], [torch.zeros_like(p) for _, p in shared_parameters(model)])


# -- stored with the run ---------------------------------------------------------------------


def test_affinity_is_stored_per_seed_and_read_back(tmp_path, data):
    cfg = config(affinity_every=2)
    specs = candidate_set("affinity", TASKS)
    assert [s.name for s in specs][-1] == "+".join(TASKS) + "@1" and len(specs) == 2 * len(TASKS) + 1
    table = train_candidates(tmp_path / "run", TASKS, specs, cfg, data=data, seeds=(0, 1), affinity=True)
    aff = table.affinity
    assert aff.tasks == TASKS and aff.width == 1.0 and aff.seeds() == [0, 1] and aff.stages() == ["final"]
    loaded = LossTable.load(tmp_path / "run")
    assert loaded.affinity.to_json() == aff.to_json()
    doc = json.loads((tmp_path / "run" / "losses.json").read_text())
    runs = {r["seed"]: r for r in doc["affinity"]["runs"]}
    assert loaded.affinity.kinds() == ["tag", "cosine", "tag-nomomentum"]
    for kind in ("tag", "cosine", "tag-nomomentum"):
        mean = loaded.affinity.mean(kind)
        expected = (np.array(runs[0][kind]) + np.array(runs[1][kind])) / 2
        assert np.allclose(mean, expected, rtol=0, atol=1e-15)
    # each seed's affinity is the one its own training measured
    alone = train_one(CandidateSpec(TASKS), dataclasses.replace(cfg, seed=1), data, affinity=True)["final"]
    assert runs[1]["tag"] == alone.affinity["tag"] and runs[1]["steps"] == alone.affinity["steps"]
    # only the all-task network was measured
    with sqlite3.connect(tmp_path / "run" / "runs.sqlite") as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM affinity")} == {"+".join(TASKS) + "@1"}


def test_resume_adds_affinity_to_a_network_trained_without_it(tmp_path, data):
    cfg = config(affinity_every=4)
    whole = CandidateSpec(TASKS)
    specs = [CandidateSpec(("normal",)), whole]
    before = train_candidates(tmp_path / "run", TASKS, specs, cfg, data=data)
    assert before.affinity is None
    single_ckpt = tmp_path / "run" / "checkpoints" / "normal_w1_final.pt"
    mtime = single_ckpt.stat().st_mtime_ns
    after = train_candidates(tmp_path / "run", TASKS, specs, cfg, data=data, resume=True, affinity=True)
    assert after.affinity is not None and after.affinity.seeds() == [0]
    key = lambda t: {n.name: n.losses for n in t.networks}  # noqa: E731
    assert key(before) == key(after)  # retrained to measure: the same network
    assert single_ckpt.stat().st_mtime_ns == mtime  # other networks untouched
    # the run remembers: a new seed of the all-task network is measured without asking again
    more = train_candidates(tmp_path / "run", TASKS, [whole], cfg, data=data, resume=True, seeds=(0, 1))
    assert more.affinity.seeds() == [0, 1]


def test_old_tables_load_and_a_damaged_affinity_is_named(tmp_path, data):
    table = train_candidates(tmp_path / "run", TASKS, [CandidateSpec(TASKS)], config(affinity_every=5), data=data,
                             affinity=True)
    doc = table.to_json()
    old = {k: v for k, v in doc.items() if k != "affinity"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert LossTable.load(tmp_path / "old.json").affinity is None
    bad = json.loads(json.dumps(doc))
    bad["affinity"]["runs"][0]["tag"][1] = [0.1]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match=r"bad.json: field 'affinity.runs\[0\].tag'"):
        LossTable.load(tmp_path / "bad.json")
    bad = json.loads(json.dumps(doc))
    bad["affinity"]["tasks"] = ["segment_semantic", "depth_zbuffer", "nromal"]
    (tmp_path / "bad2.json").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match="affinity.tasks"):
        LossTable.load(tmp_path / "bad2.json")
    assert AffinityTable.from_json(doc["affinity"], "x").mean("tag") == table.affinity.mean("tag")


def test_an_affinity_measured_before_the_momentum_free_kind_loads_and_resume_adds_it(tmp_path, data):
    cfg = config(affinity_every=5)
    table = train_candidates(tmp_path / "run", TASKS, [CandidateSpec(TASKS)], cfg, data=data, affinity=True)
    doc = json.loads(json.dumps(table.to_json()))
    for run in doc["affinity"]["runs"]:
        del run["tag-nomomentum"]
    old = AffinityTable.from_json(doc["affinity"], "old.json")
    assert old.kinds() == ["tag", "cosine"] and old.mean("tag") == table.affinity.mean("tag")
    with pytest.raises(TaskgroupError, match="seed\\(s\\) 0 has no 'tag-nomomentum' matrix"):
        old.mean("tag-nomomentum")
    # A store holding such a measurement: resuming with affinity retrains the network to add the kind.
    with sqlite3.connect(tmp_path / "run" / "runs.sqlite") as conn:
        (raw,) = conn.execute("SELECT matrices FROM affinity").fetchone()
        matrices = json.loads(raw)
        del matrices["tag-nomomentum"]
        conn.execute("UPDATE affinity SET matrices = ?", (json.dumps(matrices),))
    again = train_candidates(tmp_path / "run", TASKS, [], cfg, data=data, resume=True, affinity=True)
    assert again.affinity.kinds() == ["tag", "cosine", "tag-nomomentum"]
    assert again.affinity.mean("tag-nomomentum") == table.affinity.mean("tag-nomomentum")  # deterministic
