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

Each weighting is a class registered by name where it is defined (`@register`), all with the
interface of `LossWeighting` (multipliers, objective, learned parameters, what to record);
`LossWeighting.build(name, ...)` makes one, and an unknown name is refused listing the registered ones.

The weights a network was trained with are recorded in the run (`record()`, stored per network,
seed and stage): the multipliers of the loss, and for `uncertainty` the learned log-variances at
the kept epoch and the multipliers at the end of every epoch.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from taskgroup.errors import TaskgroupError
from taskgroup.tasks import get_task
from taskgroup.train.losses import loss_sum_count

if TYPE_CHECKING:
    import torch

    from taskgroup.train.trainer import RunData

# The weightings by name (`[train] weighting`), each registered where it is defined below (`register`).
WEIGHTINGS: dict[str, type["LossWeighting"]] = {}


def register(name: str):
    """Class decorator: `[train] weighting = name` builds this weighting."""
    def deco(cls: type["LossWeighting"]) -> type["LossWeighting"]:
        cls.kind = name
        WEIGHTINGS[name] = cls
        return cls
    return deco


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
    """The weighting of one network's training: task losses -> the objective a step minimises.

    Every weighting has this interface; a kind overrides what differs (`create`, its multipliers,
    learned parameters, what it records). Build one by name with `LossWeighting.build`."""

    kind: ClassVar[str]

    def __init__(self, tasks: Sequence[str], multipliers: Mapping[str, float] | None = None):
        self.tasks = tuple(tasks)
        self.multipliers = {t: float((multipliers or {}).get(t, 1.0)) for t in self.tasks}
        self.log_variance: dict[str, "torch.nn.Parameter"] = {}  # learned log-variances (uncertainty)
        self.history: list[dict[str, float]] = []  # learned weightings: multipliers at the end of each epoch

    @staticmethod
    def build(kind: str, tasks: Sequence[str], data: "RunData | None" = None,
              task_weights: Mapping[str, float] | None = None) -> "LossWeighting":
        """The weighting `kind` for a network of `tasks`; `scale` needs the run's data."""
        cls = WEIGHTINGS.get(kind)
        if cls is None:
            raise TaskgroupError(f"unknown weighting {kind!r}; valid weightings: {', '.join(WEIGHTINGS)}")
        return cls.create(tuple(tasks), data, task_weights)

    @classmethod
    def create(cls, tasks: tuple[str, ...], data: "RunData | None",
               task_weights: Mapping[str, float] | None) -> "LossWeighting":
        return cls(tasks)

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
        """What the task's loss is multiplied by (a tensor with a graph for learned weights)."""
        return self.multipliers[task]

    def weighted(self, task: str, loss: "torch.Tensor") -> "torch.Tensor":
        """The task's weighted loss (its gradient is what a step takes from this task)."""
        m = self.multiplier(task)
        return loss if isinstance(m, float) and m == 1.0 else loss * m

    def objective(self, losses: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
        """The quantity one step minimises, over the tasks in `losses` (in their order)."""
        return sum(self.weighted(t, loss) for t, loss in losses.items())

    def current(self) -> dict[str, float]:
        """Each task's multiplier now."""
        return {t: float(self.multiplier(t)) for t in self.tasks}

    def end_epoch(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any] | None:
        """What to record with weights kept now (None: nothing to record)."""
        return {"weighting": self.kind, "multipliers": self.current()}


@register("none")
class PlainSum(LossWeighting):
    """The paper's recipe: the plain sum of the task losses; nothing to record."""

    def objective(self, losses):
        return sum(losses.values())  # the recipe's plain sum, as it always was computed

    def snapshot(self):
        return None


@register("static")
class StaticWeights(LossWeighting):
    """Fixed importance weights from `[train] task_weights` (unlisted tasks weigh 1), relative."""

    @classmethod
    def create(cls, tasks, data, task_weights):
        return cls(tasks, _relative({t: float((task_weights or {}).get(t, 1.0)) for t in tasks}))


@register("scale")
class ScaleWeights(LossWeighting):
    """Each task's loss over its trivial predictor's training loss (standardised space), relative."""

    @classmethod
    def create(cls, tasks, data, task_weights):
        if data is None:
            raise TaskgroupError("weighting 'scale' needs the run's training data")
        trivial = trivial_training_losses(data, tasks)
        bad = [t for t, v in trivial.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise TaskgroupError(f"weighting 'scale': the trivial predictor's training loss of {bad} is "
                                 f"{[trivial[t] for t in bad]}; a task with zero loss cannot be rescaled by it")
        return cls(tasks, _relative({t: 1.0 / trivial[t] for t in tasks}))


@register("uncertainty")
class UncertaintyWeights(LossWeighting):
    """Learned log-variances per task (Kendall et al. 2018), starting where every weight is 1."""

    def __init__(self, tasks: Sequence[str], multipliers: Mapping[str, float] | None = None):
        import torch

        super().__init__(tasks, multipliers)
        for t in self.tasks:
            a, _ = _likelihood(t)
            self.log_variance[t] = torch.nn.Parameter(torch.tensor(math.log(a), dtype=torch.float32))

    def multiplier(self, task):
        import torch

        a, _ = _likelihood(task)
        return a * torch.exp(-self.log_variance[task])

    def objective(self, losses):
        total = super().objective(losses)
        for t in losses:
            if t in self.log_variance:
                total = total + _likelihood(t)[1] * self.log_variance[t]
        return total

    def current(self):
        import torch

        with torch.no_grad():
            return super().current()

    def end_epoch(self) -> None:
        self.history.append(self.current())

    def snapshot(self):
        doc = super().snapshot()
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
