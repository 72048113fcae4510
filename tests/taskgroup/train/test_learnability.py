"""A task whose targets are noise is not learnt, and every view of the loss table says so."""

import dataclasses

import numpy as np
import pytest

from taskgroup.learnability import not_learnt, not_learnt_in_table
from taskgroup.train import CandidateSpec, make_run_config, train_candidates
from taskgroup.train.trainer import RunData

TASKS = ("depth_zbuffer", "normal")


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory, fake_splits):
    """depth's targets replaced by noise independent of the image (normal stays learnable)."""
    rng = np.random.default_rng(7)
    splits = [dataclasses.replace(s, targets={**s.targets, "depth_zbuffer": rng.random(s.targets["depth_zbuffer"].shape,
                                                                                       dtype=np.float32)})
              for s in fake_splits]
    data = RunData.from_splits(TASKS, *splits)
    run = tmp_path_factory.mktemp("noisy") / "run"
    config = make_run_config("tiny", overrides={"train": {"epochs": 8, "batch_size": 16}})
    table = train_candidates(run, TASKS, [CandidateSpec(("depth_zbuffer",)), CandidateSpec(("normal",))], config,
                             data=data)
    return run, table


def test_noise_targets_are_flagged_and_learnable_ones_are_not(noisy_run):
    _, table = noisy_run
    flagged = not_learnt_in_table(table)
    assert [(f.task, f.network) for f in flagged] == [("depth_zbuffer", "depth_zbuffer@1")]
    f = flagged[0]
    assert f.loss > 0.99 * f.trivial and "not learnt" in f.message() and f"{f.trivial:.4g}" in f.message()


def test_results_marks_the_unlearnt_cell(noisy_run):
    from rich.console import Console

    from taskgroup.cli.results_view import render_table

    run, table = noisy_run
    console = Console(width=200, record=True)
    console.print(render_table(table.to_json(), "val"))
    text = console.export_text()
    assert "(not learnt): depth_zbuffer in depth_zbuffer@1." in " ".join(text.split())
    depth_row = next(line for line in text.splitlines() if "│ depth_zbuffer " in line and "trivial" not in line)
    assert " !" in depth_row
    normal_row = next(line for line in text.splitlines() if "│ normal " in line)
    assert " !" not in normal_row


def test_tables_without_reference_losses_are_not_checked():
    assert not_learnt([("a", "a@1", 5.0)], {}) == []
    reference = {"a": {"val": 4.0}, "b": {"val": 2.0}, "c": {"val": 1.0}}
    flagged = not_learnt([("a", "a@1", 5.0), ("b", "b@1", 1.0), ("c", "c@1", 0.995)], reference)
    assert [n.task for n in flagged] == ["a", "c"]  # c: within 1% of the constant
