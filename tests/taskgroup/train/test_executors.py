"""Executors: worker processes and Ray tasks train what the local executor trains, bit for bit;
lost workers' networks are trained again exactly once; a killed driver resumes with what it
committed. The Ray tests need the `ray` extra (CI installs it) and run a local instance with
2 CPUs."""

import dataclasses
import importlib.util
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.train import CandidateSpec, candidate_set, make_run_config, train_candidates
from taskgroup.train.executors import ExecutorSpec, create_executor, parse_executor
from taskgroup.train.executors.processes import ProcessesExecutor
from taskgroup.train.trainer import Progress, RunData

TASKS = ("depth_zbuffer", "normal")
SEEDS = (0, 1)
REPO = Path(__file__).resolve().parents[3]
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed (pip install 'taskgrouping[ray]'; CI installs it)")


@pytest.fixture(scope="module")
def data(fake_splits):
    return RunData.from_splits(TASKS, *fake_splits)


def cfg(epochs=4, **kw):
    # ESA at half the schedule: every job trains two stages (two checkpoints per result).
    return make_run_config("tiny", overrides={"train": {"epochs": epochs, "batch_size": 16}}, esa_fraction=0.5, **kw)


SPECS = candidate_set("singles", TASKS)  # 4 networks; x 2 seeds = 8 jobs


def results(run_dir):
    """Every committed row, without wall times: what must not depend on the executor."""
    con = sqlite3.connect(f"file:{run_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT name, seed, stage, fraction, best_epoch, steps, losses, checkpoint, "
                           "checkpoint_sha256 FROM results ORDER BY name, seed, stage").fetchall()
        status = dict(((n, s), (st, a)) for n, s, st, a in
                      con.execute("SELECT name, seed, status, attempts FROM candidates"))
    finally:
        con.close()
    return rows, status


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("local") / "run"
    train_candidates(run, TASKS, SPECS, cfg(), data=data, seeds=SEEDS, stages=("early", "final"))
    return results(run)[0]


def features_cfg():
    # Per-task stopping (lr 0.3 makes the two tasks peak at different epochs: stops with checkpoints
    # of their own), learned loss weights, and affinity tracked on the all-task network.
    return make_run_config("tiny", overrides={"train": {"epochs": 4, "batch_size": 16, "lr": 0.3, "per_task_stopping": True,
                                                        "weighting": "uncertainty", "affinity_every": 5}},
                           esa_fraction=0.5)


def train_features(run, data, **kw):
    train_candidates(run, TASKS, [], features_cfg(), data=data, seeds=SEEDS, affinity=True, **kw)


def extras(run_dir):
    """Per-task stops, loss weights and affinity (without its timing) as committed."""
    con = sqlite3.connect(f"file:{run_dir / 'runs.sqlite'}?mode=ro", uri=True)
    try:
        return (con.execute("SELECT name, seed, stage, task, epoch, losses, checkpoint, checkpoint_sha256 "
                            "FROM task_stops ORDER BY name, seed, stage, task").fetchall(),
                con.execute("SELECT * FROM loss_weights ORDER BY name, seed, stage").fetchall(),
                con.execute("SELECT name, seed, stage, steps, every, matrices FROM affinity "
                            "ORDER BY name, seed, stage").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_features(tmp_path_factory, data):
    run = tmp_path_factory.mktemp("features") / "run"
    train_features(run, data)
    rows, (stops, weights, affinity) = results(run)[0], extras(run)
    assert {r[1] for r in rows} == set(SEEDS) and len(rows) == 2 * len(SEEDS)  # early and final of each seed
    own = [r for r in stops if not r[6].endswith(("_final.pt", "_early.pt"))]
    assert own and {r[1] for r in stops} == set(SEEDS)  # stops with checkpoints of their own, in both seeds
    assert len(weights) == len(affinity) == 2 * len(SEEDS)
    return rows, (stops, weights, affinity)


class Recorder(Progress):
    def __init__(self):
        self.started, self.failed, self.done, self.epochs = [], [], [], []

    def job_started(self, name, where):
        self.started.append((name, where))

    def job_failed(self, name, reason, retrying):
        self.failed.append((name, reason, retrying))

    def candidate_done(self, name, summary):
        self.done.append(name)

    def epoch_done(self, name, epoch, epochs, val_total, lr):
        self.epochs.append((name, epoch))


def no_temporary_files(run):
    return not list((run / "checkpoints").glob(".*"))


# -- specs ------------------------------------------------------------------------------------

def test_executor_specs_are_parsed_and_bad_ones_named():
    assert parse_executor("local") == ExecutorSpec()
    assert parse_executor("processes:3", devices="cuda:0,cuda:1") == ExecutorSpec("processes", 3, ("cuda:0", "cuda:1"))
    assert parse_executor("ray", ray_address="10.0.0.5:6379", shared_storage=True) == ExecutorSpec(
        "ray", 1, ("cpu",), "10.0.0.5:6379", True)
    for text, kw, match in [("threads", {}, "unknown executor 'threads'; valid executors: local, processes:N, ray"),
                            ("processes", {}, "processes:2"), ("processes:0", {}, "processes:2"),
                            ("processes:x", {}, "processes:2"), ("local:2", {}, "unknown executor"),
                            ("local", {"ray_address": "auto"}, "--ray-address is for --executor ray"),
                            ("local", {"shared_storage": True}, "--shared-storage is for"),
                            ("processes:2", {"devices": "gpu0"}, "valid devices: cpu, cuda, cuda:N"),
                            ("processes:2", {"devices": "cpu:1"}, "valid devices"),
                            ("processes:2", {"devices": ","}, "at least one device")]:
        with pytest.raises(TaskgroupError, match=re.escape(match)):
            parse_executor(text, **kw)
    with pytest.raises(TaskgroupError, match="one device"):
        create_executor(parse_executor("local", devices="cpu,cpu"))
    with pytest.raises(TaskgroupError, match="give cpu or cuda"):
        create_executor(parse_executor("ray", devices="cuda:1"))


def test_devices_are_read_in_the_runtime_grammar_and_checked_against_torch(monkeypatch):
    import torch

    from taskgroup.train.executors.base import check_local_devices

    assert parse_executor("processes:2", devices=" CUDA:1,cpu").devices == ("cuda:1", "cpu")
    assert ProcessesExecutor(2, ("cuda", "cpu")).slot_devices == ["cuda:0", "cpu"]
    with pytest.raises(TaskgroupError, match=re.escape("--devices: unknown device 'gpu0'; valid devices: cpu, cuda, "
                                                       "cuda:N")):
        parse_executor("local", devices="gpu0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_local_devices(["cpu", "cuda", "cuda:1"])
    with pytest.raises(TaskgroupError, match=re.escape("--devices: device 'cuda:2' is not available (2 CUDA device(s) "
                                                       "are visible); valid devices here: cpu, cuda:0, cuda:1")):
        check_local_devices(["cuda:0", "cuda:2"])


def test_a_missing_gpu_is_refused_before_the_run_directory_exists(tmp_path, data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for executor in ("local", "processes:2"):
        with pytest.raises(TaskgroupError, match="sees no CUDA device"):
            train_candidates(tmp_path / "run", TASKS, SPECS, cfg(), data=data,
                             executor=parse_executor(executor, devices="cuda:0"))
        assert not (tmp_path / "run").exists()


# -- processes:N ------------------------------------------------------------------------------

def test_processes_match_local_bit_for_bit_sending_bytes_or_on_shared_storage(tmp_path, data, local_run):
    progress = Recorder()
    with ProcessesExecutor(2) as executor:  # one pair of workers for both runs: they keep the splits
        train_candidates(tmp_path / "bytes", TASKS, SPECS, cfg(), data=data, seeds=SEEDS, stages=("early", "final"),
                         executor=executor, progress=progress)
        executor.shared_storage = True
        train_candidates(tmp_path / "shared", TASKS, SPECS, cfg(), data=data, seeds=SEEDS, stages=("early", "final"),
                         executor=executor)
        pids = {re.search(r"pid (\d+)", where).group(1) for _, where in progress.started}
        assert len(pids) == 2  # every job went to one of the two workers, started once
    for run in ("bytes", "shared"):
        rows, status = results(tmp_path / run)
        assert rows == local_run  # losses, steps, best epochs and checkpoint bytes (sha256)
        assert set(status.values()) == {("done", 1)} and no_temporary_files(tmp_path / run)
    assert sorted(progress.done) == sorted(f"{s.name} seed {seed}" for s in SPECS for seed in SEEDS)
    assert {e for _, e in progress.epochs} == {1, 2, 3, 4}  # epoch ends are forwarded from the workers


def test_processes_carry_per_task_stops_loss_weights_and_affinity_bit_for_bit(tmp_path, data, local_features):
    with ProcessesExecutor(2) as executor:
        train_features(tmp_path / "bytes", data, executor=executor)
        executor.shared_storage = True
        train_features(tmp_path / "shared", data, executor=executor)
    for run in ("bytes", "shared"):
        assert (results(tmp_path / run)[0], extras(tmp_path / run)) == local_features
        assert no_temporary_files(tmp_path / run)
        for stop in extras(tmp_path / run)[0]:
            assert (tmp_path / run / stop[6]).is_file()


def test_a_killed_worker_s_network_is_trained_again_exactly_once(tmp_path, data):
    config = cfg(epochs=6)
    specs = SPECS[:2]
    train_candidates(tmp_path / "local", TASKS, specs, config, data=data, stages=("early", "final"))

    class KillFirstWorker(Recorder):
        def epoch_done(self, name, epoch, epochs, val_total, lr):
            super().epoch_done(name, epoch, epochs, val_total, lr)
            if epoch == 2 and not self.failed and len(self.epochs) < 4:  # mid-network: 4 more epochs to go
                pid = int(re.search(r"pid (\d+)", dict(self.started)[name]).group(1))
                self.killed = name
                os.kill(pid, signal.SIGKILL)

    progress = KillFirstWorker()
    train_candidates(tmp_path / "p", TASKS, specs, config, data=data, stages=("early", "final"),
                     executor="processes:2", progress=progress)
    assert [(n, retrying) for n, _, retrying in progress.failed] == [(progress.killed, True)]
    assert "died (signal SIGKILL)" in progress.failed[0][1]
    rows, status = results(tmp_path / "p")
    assert rows == results(tmp_path / "local")[0]  # every network once, as the local run trained it
    assert status[(progress.killed, 0)] == ("done", 2) and sorted(a for _, a in status.values()) == [1, 2]


def test_a_training_error_in_a_worker_stops_new_jobs_and_commits_the_running_ones(tmp_path, fake_splits):
    train, val, test = fake_splits
    # Normals of 1e37 overflow the float32 validation sum of that task only: "training diverged".
    val = dataclasses.replace(val, targets=dict(val.targets, normal=np.full_like(val.targets["normal"], 1e37)))
    data = RunData.from_splits(TASKS, train, val, test)
    specs = [CandidateSpec(("normal",)), CandidateSpec(("depth_zbuffer",)), CandidateSpec(("depth_zbuffer",), 0.5)]
    progress = Recorder()
    with pytest.raises(TaskgroupError, match=r"candidate normal@1: training diverged"):
        train_candidates(tmp_path / "run", TASKS, specs, cfg(epochs=3), data=data, seeds=SEEDS,
                         stages=("early", "final"), executor="processes:2", progress=progress)
    rows, status = results(tmp_path / "run")
    # Jobs go out seed by seed: on a loaded machine the other worker can finish both depth networks of seed 0
    # and start normal@1 seed 1 before seed 0 diverges; that one diverges too. Either way:
    diverged = {k: v for k, v in status.items() if k[0] == "normal@1"}
    assert ("normal@1", 0) in diverged and set(diverged.values()) == {("running", 1)}  # never retried
    assert {v for k, v in status.items() if k[0] != "normal@1"} == {("done", 1)}  # the others that started: committed
    assert len(status) < len(specs) * len(SEEDS)  # no new job started after the error
    assert sorted(n for n, _, retrying in progress.failed if not retrying) == \
        [f"normal@1 seed {seed}" for _, seed in sorted(diverged)] and len(progress.failed) == len(diverged)


@pytest.mark.slow
def test_processes_workers_stop_with_their_driver_and_resume_trains_only_the_rest(tmp_path, tiny_config_factory):
    run, args, env = _cli_run(tmp_path, tiny_config_factory, "processes:2")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    committed, workers, killed_at = _kill_after_first_commit(proc, run)
    _wait_gone(workers, 10)
    assert workers and not any(_alive(pid) for pid in workers), "workers outlived their driver"
    _resume_and_check(run, args, env, committed, killed_at)


# -- ray --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield ray
    ray.shutdown()


@needs_ray
def test_ray_matches_local_bit_for_bit(tmp_path, data, local_run, ray_instance):
    progress = Recorder()
    train_candidates(tmp_path / "run", TASKS, SPECS, cfg(), data=data, seeds=SEEDS, stages=("early", "final"),
                     executor="ray", progress=progress)
    rows, status = results(tmp_path / "run")
    assert rows == local_run and set(status.values()) == {("done", 1)}
    assert len(progress.started) == len(progress.done) == 8 and not progress.failed
    assert ray_instance.is_initialized()  # an instance the caller started is the caller's to stop


@needs_ray
def test_splits_lost_with_a_node_are_put_again_and_the_network_retried(tmp_path, data, ray_instance):
    """A node that dies takes the objects it held: a task that cannot fetch the run's splits is a lost
    worker (retried, with the splits put again), not a training error ending the run without a message."""
    from taskgroup.train.executors.ray_executor import RayExecutor

    @ray_instance.remote(num_cpus=0)
    class Holder:
        def put(self, value):
            return [ray_instance.put(value)]  # a reference owned by this actor's process

    class LosesTheSplits(RayExecutor):
        def _prepare(self, data):
            super()._prepare(data)
            holder = Holder.remote()
            self._data_ref = ray_instance.get(holder.put.remote(data))[0]
            ray_instance.kill(holder)  # its process, and the splits it owned, are gone: as with a dead node
            deadline = time.time() + 30  # until Ray has noticed: the object cannot be fetched any more
            while time.time() < deadline:
                try:
                    ray_instance.get(self._data_ref, timeout=2)
                except ray_instance.exceptions.ObjectLostError:
                    return
                except ray_instance.exceptions.GetTimeoutError:
                    pass
                time.sleep(0.5)
            pytest.skip("Ray kept the killed owner's object readable on this node")

    config, specs = cfg(epochs=2), SPECS[:1]
    train_candidates(tmp_path / "local", TASKS, specs, config, data=data, stages=("early", "final"))
    progress = Recorder()
    train_candidates(tmp_path / "ray", TASKS, specs, config, data=data, stages=("early", "final"),
                     executor=LosesTheSplits(), progress=progress)
    assert [(r, retrying) for _, r, retrying in progress.failed] and all(f[2] for f in progress.failed)
    assert any("OwnerDiedError" in r or "ObjectLostError" in r for _, r, _ in progress.failed)
    assert results(tmp_path / "ray")[0] == results(tmp_path / "local")[0]


@needs_ray
def test_ray_carries_per_task_stops_loss_weights_and_affinity_bit_for_bit(tmp_path, data, local_features, ray_instance):
    train_features(tmp_path / "run", data, executor="ray")
    assert (results(tmp_path / "run")[0], extras(tmp_path / "run")) == local_features


@needs_ray
def test_a_killed_ray_worker_s_network_is_trained_again_exactly_once(tmp_path, data, ray_instance):
    config = cfg(epochs=12)
    specs = SPECS[:2]
    train_candidates(tmp_path / "local", TASKS, specs, config, data=data, stages=("early", "final"))
    killed = []

    def kill_one_worker():
        """Kill the first Ray worker seen training a network, a moment after it started."""
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid, title in _ray_task_processes():
                if title.startswith("ray::taskgroup train "):
                    time.sleep(0.3)
                    if dict(_ray_task_processes()).get(pid) == title:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(title.removeprefix("ray::taskgroup train "))
                    break
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    progress = Recorder()
    train_candidates(tmp_path / "ray", TASKS, specs, config, data=data, stages=("early", "final"), executor="ray",
                     progress=progress)
    killer.join()
    assert killed, "no Ray worker was caught training"
    assert [(n, r) for n, _, r in progress.failed] == [(killed[0], True)]
    assert "WorkerCrashedError" in progress.failed[0][1]
    rows, status = results(tmp_path / "ray")
    assert rows == results(tmp_path / "local")[0]
    assert status[(killed[0], 0)] == ("done", 2) and sorted(a for _, a in status.values()) == [1, 2]


@needs_ray
@pytest.mark.slow
def test_ray_driver_killed_then_resumed_trains_only_the_missing_networks(tmp_path, tiny_config_factory):
    run, args, env = _cli_run(tmp_path, tiny_config_factory, "ray")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    committed, instance, killed_at = _kill_after_first_commit(proc, run)
    _wait_gone(instance, 30)  # the local Ray instance (GCS, raylet, workers) stops with its driver
    assert instance and not any(_alive(pid) for pid in instance), "the Ray instance outlived its driver"
    deadline = time.time() + 15  # a worker notices its raylet is gone within a second or two (more under load)
    while time.time() < deadline and _training_ray_tasks():
        time.sleep(0.1)
    assert not _training_ray_tasks()
    # Ray's per-node agents (DashboardAgent, RuntimeEnvAgent) try for a minute to tell the dead GCS that their
    # raylet died; the reaper the driver started ends them a few seconds after the driver is gone.
    session = _kill_after_first_commit.session
    assert session
    deadline = time.time() + 20
    while time.time() < deadline and _session_processes(session):
        time.sleep(0.2)
    assert not _session_processes(session), f"outlived the driver: {_session_processes(session)}"
    _resume_and_check(run, args, env, committed, killed_at)


def _ray_session(pids):
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        found = re.search(r"/ray/session_[0-9_\-]+", text)
        if found:
            return found.group(0)
    return None


def _session_processes(session):
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if session in text and _alive(int(cmdline.parent.name)):
            out.append(text[:120])
    return out


# -- helpers for the killed-driver tests --------------------------------------------------------

def _cli_run(tmp_path, tiny_config_factory, executor):
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f'[data]\ncache_dir = "{tiny_config_factory.cache}"\n[train]\nepochs = 4\n')
    run = tmp_path / "run"
    args = [sys.executable, "-m", "taskgroup", "train", "--tasks", ",".join(TASKS), "--candidates", "singles",
            "--preset", "tiny", "--config", str(cfg_file), "--out", str(run), "--executor", executor]
    return run, args, dict(os.environ, PYTHONPATH=str(REPO))


def _rows(run, writable=False):
    """The candidates table; `writable` once the driver is dead: a driver killed inside a
    transaction leaves a hot journal that only a writable connection rolls back (as --resume does)."""
    try:
        con = sqlite3.connect(f"file:{run / 'runs.sqlite'}?mode={'rw' if writable else 'ro'}", uri=True, timeout=0.1)
        try:
            return {(n, s): (st, a, t) for n, s, st, a, t in
                    con.execute("SELECT name, seed, status, attempts, started_at FROM candidates")}
        finally:
            con.close()
    except sqlite3.Error:
        return {}


def _kill_after_first_commit(proc, run):
    """SIGKILL the driver once one network is committed and another is running; return the
    committed rows, the driver's child processes at that moment and the time of the kill."""
    deadline = time.time() + 300
    rows = {}
    while time.time() < deadline and proc.poll() is None:
        rows = _rows(run)
        states = [st for st, _, _ in rows.values()]
        if "done" in states and "running" in states:
            break
        time.sleep(0.02)
    children = _children(proc.pid)
    _kill_after_first_commit.session = _ray_session(children)  # read while its processes are alive
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait()
    rows = _rows(run, writable=True)
    committed = {k: v for k, v in rows.items() if v[0] == "done"}
    assert committed and len(committed) < 4, f"not killed mid-run: {rows}"
    return committed, children, killed_at


def _resume_and_check(run, args, env, committed, killed_at):
    out = subprocess.run([*args, "--resume"], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _rows(run)
    assert len(rows) == 4 and all(st == "done" for st, _, _ in rows.values())
    assert {k: rows[k] for k in committed} == committed  # finished networks untouched (not even restarted)
    for key in set(rows) - set(committed):
        assert rows[key][2] > killed_at  # trained (again) by the resumed run
    con = sqlite3.connect(run / "runs.sqlite")
    try:
        assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 4  # one row per network: exactly once
    finally:
        con.close()
    assert no_temporary_files(run)


def _training_ray_tasks():
    return [pid for pid, t in _ray_task_processes() if t.startswith("ray::taskgroup train") and _alive(pid)]


def _ray_task_processes():
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::"):
            out.append((int(cmdline.parent.name), title))
    return out


def _children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _wait_gone(pids, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- GPU (cannot run on a machine without one) ---------------------------------------------------

def _cuda_available():
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU (none on the machines this was written on)")
def test_processes_train_on_a_gpu_and_return_cpu_checkpoints(tmp_path, data, local_run):
    import torch

    train_candidates(tmp_path / "gpu", TASKS, SPECS[:1], cfg(), data=data, stages=("early", "final"),
                     executor=parse_executor("processes:1", devices="cuda:0"))
    rows, status = results(tmp_path / "gpu")
    assert set(status.values()) == {("done", 1)}
    ckpt = torch.load(tmp_path / "gpu" / rows[0][7], weights_only=True)
    assert all(v.device.type == "cpu" for v in ckpt["state_dict"].values())
    gpu = {(r[0], r[2]): json.loads(r[6]) for r in rows}
    cpu = {(r[0], r[2]): json.loads(r[6]) for r in local_run if r[1] == 0}
    for key, losses in gpu.items():  # another device's arithmetic: close, not identical
        for split in losses:
            for task, value in losses[split].items():
                assert value == pytest.approx(cpu[key][split][task], rel=0.05)
