"""Per-task loss weights: what each task's loss counts for in a training step.

`[train] weighting`:
- `none` (the paper's recipe): the plain sum of the task losses.
- `static`: fixed importance weights from `[train] task_weights` (unlisted tasks weigh 1).
- `scale`: each task's loss divided by its trivial predictor's loss on the training split, in
  the standardised space trained in, so a task whose loss is large only by its units (a
  cross-entropy of ~1.5 nats next to L1 errors of ~0.7 standard deviations) does not dominate.
- `uncertainty` (Kendall, Gal and Cipolla, CVPR 2018): a learned log-variance s_t per task and
  network, trained with the network. A task's term is its negative log-likelihood under a
  homoscedastic noise model: L1 as a Laplace likelihood, exp(-s) L + s (s = log b); L2 as a
  Gaussian, 0.5 exp(-s) L + 0.5 s (s = log sigma^2); cross-entropy and BCE with the paper's
  tempered-softmax approximation, exp(-s) L + 0.5 s. At the optimum of s the weight is 1/L
  (L1), 1/(2L) (L2, cross-entropy). Every s starts where the weight is 1 (the plain sum), has
  no weight decay, and follows the network's learning-rate schedule.

The static weights (`static`, `scale`) are relative: each network's weights are rescaled to
average 1 over its own tasks, so the network's overall step size is the recipe's (the learning
rate is tuned for the plain sum) and a single-task network is trained exactly as without
weighting. Uncertainty weights are not rescaled (the likelihood fixes their level), so they also
change a single-task network's effective learning rate.

The weights a network was trained with are recorded in the run (`record()`, stored per network,
seed and stage): the multipliers of the loss, and for `uncertainty` the learned log-variances at
the kept epoch and the multipliers at the end of every epoch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import get_task
from taskgroup.train.losses import loss_sum_count

if TYPE_CHECKING:
    import torch

    from taskgroup.train.trainer import RunData

WEIGHTINGS = ("none", "static", "scale", "uncertainty")

# Uncertainty weighting per loss: (factor a, regulariser factor c) in a exp(-s) L + c s, and the
# initial s at which the loss's multiplier a exp(-s) is 1.
_LIKELIHOOD = {"l1": (1.0, 1.0), "l2": (0.5, 0.5), "cross_entropy": (1.0, 0.5), "bce": (1.0, 0.5)}


def check_task_weights(task_weights: Mapping[str, float], tasks: Sequence[str], where: str = "train config") -> None:
    """Static weights must name tasks of the run (a typo would silently weigh 1)."""
    unknown = sorted(set(task_weights) - set(tasks))
    if unknown:
        raise TaskgroupError(f"{where}: field 'task_weights': {', '.join(map(repr, unknown))} not among the run's "
                             f"tasks; valid tasks: {', '.join(tasks)}")


class LossWeighting:
    """The weighting of one network's training: task losses -> the objective a step minimises."""

    def __init__(self, kind: str, tasks: Sequence[str], multipliers: Mapping[str, float] | None = None):
        import torch

        if kind not in WEIGHTINGS:
            raise TaskgroupError(f"unknown weighting {kind!r}; valid weightings: {', '.join(WEIGHTINGS)}")
        self.kind = kind
        self.tasks = tuple(tasks)
        self.multipliers = {t: float((multipliers or {}).get(t, 1.0)) for t in self.tasks}
        self.log_variance: dict[str, torch.nn.Parameter] = {}
        self.history: list[dict[str, float]] = []  # uncertainty: multipliers at the end of each epoch
        if kind == "uncertainty":
            for t in self.tasks:
                a, _ = _likelihood(t)
                self.log_variance[t] = torch.nn.Parameter(torch.tensor(math.log(a), dtype=torch.float32))

    @classmethod
    def build(cls, kind: str, tasks: Sequence[str], data: "RunData | None" = None,
              task_weights: Mapping[str, float] | None = None) -> "LossWeighting":
        """The weighting `kind` for a network of `tasks`; `scale` needs the run's data."""
        tasks = tuple(tasks)
        if kind == "static":
            return cls(kind, tasks, _relative({t: float((task_weights or {}).get(t, 1.0)) for t in tasks}))
        if kind == "scale":
            if data is None:
                raise TaskgroupError("weighting 'scale' needs the run's training data")
            trivial = trivial_training_losses(data, tasks)
            bad = [t for t, v in trivial.items() if not (math.isfinite(v) and v > 0)]
            if bad:
                raise TaskgroupError(f"weighting 'scale': the trivial predictor's training loss of {bad} is "
                                     f"{[trivial[t] for t in bad]}; a task with zero loss cannot be rescaled by it")
            return cls(kind, tasks, _relative({t: 1.0 / trivial[t] for t in tasks}))
        return cls(kind, tasks)

    def to(self, device) -> "LossWeighting":
        """The learned parameters moved to `device` (the network's), in place; returns self."""
        for p in self.log_variance.values():
            p.data = p.data.to(device)
        return self

    def parameters(self, task: str | None = None) -> list["torch.nn.Parameter"]:
        """The learned parameters (uncertainty: log-variances), of one task or all."""
        if task is not None:
            return [self.log_variance[task]] if task in self.log_variance else []
        return list(self.log_variance.values())

    def multiplier(self, task: str) -> "float | torch.Tensor":
        """What the task's loss is multiplied by (a tensor with a graph for uncertainty)."""
        import torch

        if self.kind == "uncertainty":
            a, _ = _likelihood(task)
            return a * torch.exp(-self.log_variance[task])
        return self.multipliers[task]

    def weighted(self, task: str, loss: "torch.Tensor") -> "torch.Tensor":
        """The task's weighted loss (its gradient is what a step takes from this task)."""
        m = self.multiplier(task)
        return loss if isinstance(m, float) and m == 1.0 else loss * m

    def objective(self, losses: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """The quantity one step minimises, over the tasks in `losses` (in their order)."""
        if self.kind == "none":
            return sum(losses.values())  # the recipe's plain sum, as it always was computed
        total = sum(self.weighted(t, loss) for t, loss in losses.items())
        for t in losses:
            if t in self.log_variance:
                total = total + _likelihood(t)[1] * self.log_variance[t]
        return total

    def current(self) -> dict[str, float]:
        """Each task's multiplier now."""
        import torch

        with torch.no_grad():
            return {t: float(self.multiplier(t)) for t in self.tasks}

    def end_epoch(self) -> None:
        if self.kind == "uncertainty":
            self.history.append(self.current())

    def snapshot(self) -> dict[str, Any] | None:
        """What to record with weights kept now (None for the plain sum: nothing to record)."""
        if self.kind == "none":
            return None
        doc: dict[str, Any] = {"weighting": self.kind, "multipliers": self.current()}
        if self.kind == "uncertainty":
            doc["log_variance"] = {t: float(p.detach()) for t, p in self.log_variance.items()}
            doc["per_epoch"] = [dict(h) for h in self.history]
        return doc


def _likelihood(task: str) -> tuple[float, float]:
    loss = get_task(task).loss
    if loss not in _LIKELIHOOD:
        raise TaskgroupError(f"task '{task}': uncertainty weighting has no likelihood for loss {loss!r}")
    return _LIKELIHOOD[loss]


def _relative(weights: dict[str, float]) -> dict[str, float]:
    """Rescaled to average 1 over the network's tasks."""
    mean = math.fsum(weights.values()) / len(weights)
    return {t: w / mean for t, w in weights.items()}


def trivial_training_losses(data: "RunData", tasks: Sequence[str], chunk: int = 256) -> dict[str, float]:
    """Each task's trivial-predictor loss on the training split, in the standardised space trained in
    (the masked mean of the loss of the constant prediction the heads start from)."""
    import torch


    constants = data.standardized_constants()
    out = {}
    with torch.no_grad():
        for task in tasks:
            c = torch.as_tensor(constants[task], dtype=torch.float32).view(1, -1, 1, 1)
            total = torch.zeros((), dtype=torch.float64)
            count = torch.zeros((), dtype=torch.float64)
            for start in range(0, len(data.train), chunk):
                _, targets, masks = data.train.slice(start, start + chunk, (task,))
                target = targets[task]
                shape = (target.shape[0], c.shape[1]) + tuple(target.shape[-2:])
                s, n = loss_sum_count(task, c.expand(shape), target, masks[task])
                total += s.double()
                count += n.double()
            out[task] = float(total / count.clamp_min(1.0))
    return out
