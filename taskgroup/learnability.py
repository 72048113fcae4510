"""Is a task learnt at all? A network's loss on a task against the trivial predictor's.

The trivial predictor is the best constant output fitted on the training split (see
taskgroup.train.losses). A network whose validation loss on a task is not clearly below it has
learnt nothing about that task from the image; ranking groupings by such losses ranks noise, so
`results`, `select`, `pipeline` and the report name every such task instead of ranking it
silently. The check uses the validation split, the one selection reads.

"Clearly": at least MARGIN (1%) below. A network trained on targets that are pure noise learns
the constant and lands within a fraction of a percent of it, on either side, by luck of the
split; every task the built-in presets learn is 15% or more below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

MARGIN = 0.01  # a learnt task's validation loss is at least this fraction below the trivial predictor's


def is_learnt(loss: float, trivial: float) -> bool:
    return loss < (1.0 - MARGIN) * trivial


@dataclass(frozen=True)
class NotLearnt:
    task: str
    network: str  # the network's name, e.g. 'depth_zbuffer+normal@1'
    loss: float  # the network's validation loss on the task (mean over seeds)
    trivial: float  # the trivial predictor's validation loss

    @property
    def ratio(self) -> float:
        return self.loss / self.trivial if self.trivial > 0 else float("inf")

    def message(self) -> str:
        return (f"{self.task} is not learnt by {self.network}: validation loss {self.loss:.4g} is not clearly below "
                f"the trivial constant predictor's {self.trivial:.4g} (ratio {self.ratio:.3f}; a learnt task is at "
                f"least {MARGIN:.0%} below); its loss ranks noise, not a skill (train longer or on more data, check "
                "the targets, or drop the task)")


def not_learnt(losses: Iterable[tuple[str, str, float]], reference: Mapping[str, Mapping[str, float]],
               split: str = "val") -> list[NotLearnt]:
    """The (task, network, loss) triples whose loss is not clearly below the task's trivial loss on `split`.

    Tasks without a reference loss (e.g. the paper's published tables) are not checked."""
    out = []
    for task, network, loss in losses:
        trivial = reference.get(task, {}).get(split)
        if trivial is not None and not is_learnt(loss, trivial):
            out.append(NotLearnt(task, network, float(loss), float(trivial)))
    return out


def not_learnt_in_table(table, split: str = "val") -> list[NotLearnt]:
    """Every (network, task) of a loss table that does not beat the trivial predictor on `split`."""
    return not_learnt(((t, n.name, n.losses[split][t]) for n in table.networks
                       for t in n.tasks if t in n.losses.get(split, {})), table.reference_losses, split)
