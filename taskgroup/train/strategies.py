"""Update strategies: how one training batch becomes optimiser steps (`[train] strategy`).

- `sum` (the paper's recipe, the default): one forward pass, one step on the sum of the task
  losses.
- `alternating` (IUS, Pascal et al. 2021, "Improved optimization strategies for deep multi-task
  networks"): per batch, one forward, backward and step per task on that task's loss alone, in
  the network's task order; `alternating:shuffled` draws the order anew for every batch. One
  optimiser: the trunk's momentum buffers carry every task's steps.
- `alternating-independent` (IO): as `alternating`, with one optimiser per task over the trunk
  and that task's head (and its loss weight, if learned), so each task's steps build their own
  momentum on the shared trunk; a step on task a leaves task b's state as it was. With the
  recipe's SGD the per-task state is the momentum buffer (the first moment); Pascal et al. pair
  the idea with Adam, whose per-task second moment also rescales each task's step.
- `random-groups:G`: the network's tasks are split into G random groups of near-equal size,
  drawn once per network from the seed (`random-groups:G:epoch`: drawn again at the start of
  every epoch), and each batch takes one step per group on the group's summed loss, groups in
  the order of their first task. G is capped at the network's number of tasks, so
  `random-groups:1` is `sum` and `random-groups:G` with G >= n is `alternating`, step for step.

Common to all: every strategy sees the same batches in the same order (the batch order comes
from the seed alone; shuffled orders and groups from a separate stream), a step computes only
the heads of the tasks it trains, and the learning-rate schedule advances once per batch. Heads
of tasks outside a step have no gradient, so SGD leaves them alone (no weight decay, no
momentum); the trunk is stepped once per group, so its weight decay acts once per step, i.e. up
to n times per batch. BatchNorm running statistics of the trunk are updated once per forward pass.
With `[train] amp` each step's forward pass runs under autocast and fp16 steps go through the
loss scaler (taskgroup.train.precision); the losses are computed in float32.

The model scales every gradient entering the trunk by 1/sqrt(n), n being the network's number
of tasks (`taskgroup.models.xception`), whatever the step trains. With `sum` a step's trunk
gradient is the sum of n task gradients over sqrt(n): roughly the size of one task's gradient
when the tasks' gradients are unrelated, so adding heads does not inflate the trunk's step.
With `alternating` each of the n steps of a batch moves the trunk by one task's gradient over
sqrt(n); over the batch the trunk moves by the sum of them over sqrt(n), as with `sum`, so the
trunk's learning rate per batch is the same across strategies and one step per task does not
multiply it by n. `random-groups:G` lies in between: each group's step carries its tasks' summed
gradient over sqrt(n). The heads are never scaled: each head takes one step per batch on its own
task's gradient under every strategy.

Each strategy is a class registered by name where it is defined (`@register`, as the estimators
of taskgroup.search.registry), all with one small interface: `from_options` (its options after
the name), `text` (the round trip), `epoch_groups` and `batch_groups` (which task groups step);
`parse_strategy` builds one from `[train] strategy`, and its errors list every registered syntax.

Affinity tracking (taskgroup.train.affinity) measures the lookahead of the optimiser's next
step on the summed loss; it is offered with `sum` only. With one step per task (or group) the
real next step is another task's, taken from another state, so the lookahead would no longer be
the optimiser's step: `check_affinity` refuses those strategies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping, Sequence

import numpy as np

from taskgroup.errors import TaskgroupError
from taskgroup.train.precision import MixedPrecision
from taskgroup.train.losses import loss_mean

if TYPE_CHECKING:
    import torch

    from taskgroup.train.config import TrainConfig
    from taskgroup.train.weighting import LossWeighting

_STREAM = 0x5717  # the strategy's random stream, separate from the batch order's

# The strategies by name (`[train] strategy`), each registered where it is defined below (`register`).
STRATEGIES: dict[str, type["Strategy"]] = {}

Groups = list[tuple[str, ...]]


def register(name: str, syntax: str):
    """Class decorator: `name` (the text before any ':') builds this strategy; `syntax` is how to write it."""
    def deco(cls: type["Strategy"]) -> type["Strategy"]:
        cls.name, cls.syntax = name, syntax
        STRATEGIES[name] = cls
        return cls
    return deco


def syntax() -> str:
    """Every registered strategy's syntax, for help texts and errors: 'sum | alternating[:shuffled] | ...'."""
    return " | ".join(cls.syntax for cls in STRATEGIES.values())


@dataclass(frozen=True)
class Strategy:
    """How one batch becomes optimiser steps: which task groups take one step each, in which order.

    A strategy is a small frozen record of its options (what `[train] strategy` says); the Updater
    holds the state (optimisers, the drawn groups, the random stream) and asks it for the groups."""

    name: ClassVar[str]
    syntax: ClassVar[str]
    summed: ClassVar[bool] = False  # one step on the summed loss of all tasks (what affinity tracking measures)
    per_task_optimizers: ClassVar[bool] = False  # one optimiser per task, over the trunk and that task's head

    @classmethod
    def from_options(cls, options: list[str], text: str, where: str) -> "Strategy | None":
        """The strategy `text` ('name:option:...') describes, None if `options` are not this strategy's."""
        return cls() if not options else None

    @property
    def text(self) -> str:
        return self.name

    def epoch_groups(self, tasks: tuple[str, ...], rng: np.random.Generator, current: Groups | None) -> Groups | None:
        """The groups drawn at the start of an epoch (`current`: those drawn before; None: none drawn)."""
        return current

    def batch_groups(self, tasks: tuple[str, ...], rng: np.random.Generator, drawn: Groups | None) -> Groups:
        """The task groups of the next batch, one optimiser step each, in order."""
        raise NotImplementedError


@register("sum", "sum")
@dataclass(frozen=True)
class Sum(Strategy):
    """One forward pass, one step on the sum of the task losses (the paper's recipe)."""

    summed: ClassVar[bool] = True

    def batch_groups(self, tasks, rng, drawn):
        return [tasks]


@register("alternating", "alternating[:shuffled]")
@dataclass(frozen=True)
class Alternating(Strategy):
    """One step per task on its own loss, in the network's task order (shuffled: drawn for every batch)."""

    shuffled: bool = False  # the task order is drawn anew for every batch

    @classmethod
    def from_options(cls, options, text, where):
        return cls(shuffled=bool(options)) if options in ([], ["shuffled"]) else None

    @property
    def text(self) -> str:
        return self.name + (":shuffled" if self.shuffled else "")

    def batch_groups(self, tasks, rng, drawn):
        order = rng.permutation(len(tasks)) if self.shuffled else range(len(tasks))
        return [(tasks[i],) for i in order]


@register("alternating-independent", "alternating-independent[:shuffled]")
@dataclass(frozen=True)
class AlternatingIndependent(Alternating):
    """As alternating, with one optimiser state per task."""

    per_task_optimizers: ClassVar[bool] = True


@register("random-groups", "random-groups:G[:epoch]")
@dataclass(frozen=True)
class RandomGroups(Strategy):
    """G random task groups, drawn once per network (per epoch with ':epoch'), one step each."""

    groups: int = 1  # the number of groups G
    per_epoch: bool = False  # groups drawn anew at the start of every epoch

    @classmethod
    def from_options(cls, options, text, where):
        if not (1 <= len(options) <= 2 and options[1:] in ([], ["epoch"])):
            return None
        g = options[0]
        if not g.isdigit() or int(g) < 1:
            raise TaskgroupError(f"{where}: {text!r}: the number of groups must be a positive integer, found {g!r}")
        return cls(groups=int(g), per_epoch=len(options) == 2)

    @property
    def text(self) -> str:
        return f"{self.name}:{self.groups}" + (":epoch" if self.per_epoch else "")

    def epoch_groups(self, tasks, rng, current):
        return partition(tasks, self.groups, rng) if current is None or self.per_epoch else current

    def batch_groups(self, tasks, rng, drawn):
        return list(drawn)


def parse_strategy(text: str, where: str = "strategy") -> Strategy:
    """'sum', 'alternating[:shuffled]', 'alternating-independent[:shuffled]', 'random-groups:G[:epoch]'."""
    if not isinstance(text, str):
        raise TaskgroupError(f"{where}: expected a string, found {type(text).__name__} ({text!r}); valid: {syntax()}")
    kind, *options = text.strip().split(":")
    cls = STRATEGIES.get(kind)
    spec = cls.from_options(options, text, where) if cls is not None else None
    if spec is None:
        raise TaskgroupError(f"{where}: unknown strategy {text!r}; valid strategies: {syntax()}")
    return spec


def check_affinity(spec: Strategy | str) -> None:
    """Affinity tracking is measured against one SGD step on the summed loss (see the module doc)."""
    spec = parse_strategy(spec) if isinstance(spec, str) else spec
    if not spec.summed:
        raise TaskgroupError(f"affinity tracking needs [train] strategy = \"sum\": its lookahead is the optimiser's "
                             f"next step on the summed loss, while strategy {spec.text!r} steps on one task (group) "
                             "at a time; train the affinity run with the sum strategy")


def partition(tasks: Sequence[str], groups: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
    """`tasks` split into min(groups, len(tasks)) random groups of near-equal size; each group in the
    network's task order, groups ordered by their first task."""
    order = {t: i for i, t in enumerate(tasks)}
    perm = rng.permutation(len(tasks))
    parts = [sorted((tasks[i] for i in chunk), key=order.__getitem__)
             for chunk in np.array_split(perm, min(groups, len(tasks)))]
    return [tuple(p) for p in sorted(parts, key=lambda p: order[p[0]])]


LossFn = Callable[[Mapping[str, "torch.Tensor"]], Mapping[str, "torch.Tensor"]]
# before_backward(x, weighted task losses with their graph, outputs -> weighted task losses): the
# affinity tracker's hook, called on `sum` steps only.
Hook = Callable[["torch.Tensor", Mapping[str, "torch.Tensor"], LossFn], None]


class Updater:
    """One network's optimisers and its strategy: turns each batch into optimiser steps."""

    def __init__(self, spec: Strategy, model: "torch.nn.Module", tasks: Sequence[str], train: "TrainConfig",
                 weighting: "LossWeighting", seed: int):
        import torch

        self.spec, self.model, self.tasks, self.weighting = spec, model, tuple(tasks), weighting
        # Autocast and (fp16) loss scaling on the device the model is on (taskgroup.train.precision).
        self.precision = MixedPrecision(train.amp, next(model.parameters()).device.type)
        self._rng = np.random.default_rng((seed, _STREAM))
        self._groups: list[tuple[str, ...]] | None = None
        sgd = dict(lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay)
        if spec.per_task_optimizers:
            heads = {f"heads.{t}.": t for t in self.tasks}
            shared = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
            self._by_task = {}
            for t in self.tasks:
                own = [p for n, p in model.named_parameters() if n.startswith(f"heads.{t}.")]
                groups = [{"params": shared + own}]
                if weighting.parameters(t):
                    groups.append({"params": weighting.parameters(t), "weight_decay": 0.0})
                self._by_task[t] = torch.optim.SGD(groups, **sgd)
            unowned = [n for n, _ in model.named_parameters()
                       if n.startswith("heads.") and not any(n.startswith(h) for h in heads)]
            if unowned:
                raise TaskgroupError(f"alternating-independent: parameters {unowned[:3]} belong to no task's head")
            self.optimizers = list(self._by_task.values())
        else:
            if weighting.parameters():
                params = [{"params": list(model.parameters())},
                          {"params": weighting.parameters(), "weight_decay": 0.0}]
            else:
                params = model.parameters()
            self.optimizers = [torch.optim.SGD(params, **sgd)]

    @property
    def optimizer(self) -> "torch.optim.Optimizer":
        """The one optimiser of a shared-state strategy (what affinity tracking reads)."""
        if len(self.optimizers) != 1:
            raise TaskgroupError(f"strategy {self.spec.text!r} has one optimiser per task")
        return self.optimizers[0]

    def start_epoch(self) -> None:
        """Draw the epoch's groups (random groups: once per network, or every epoch with ':epoch')."""
        self._groups = self.spec.epoch_groups(self.tasks, self._rng, self._groups)

    def groups(self) -> list[tuple[str, ...]]:
        """The task groups of the next batch, one optimiser step each, in order."""
        if self._groups is None:
            self.start_epoch()
        return self.spec.batch_groups(self.tasks, self._rng, self._groups)

    def step(self, x: "torch.Tensor", targets: Mapping[str, "torch.Tensor"], masks: Mapping[str, "torch.Tensor | None"],
             before_backward: Hook | None = None) -> None:
        """Train on one batch: one optimiser step per group."""
        for group in self.groups():
            self.step_group(group, x, targets, masks, before_backward)

    def step_group(self, group: tuple[str, ...], x: "torch.Tensor", targets: Mapping[str, "torch.Tensor"],
                   masks: Mapping[str, "torch.Tensor | None"], before_backward: Hook | None = None) -> None:
        """One optimiser step on the (weighted) summed loss of `group`'s tasks."""
        def group_losses(out):
            return {t: loss_mean(t, out[t], targets[t], masks[t]) for t in group}

        with self.precision.autocast():
            out = self.model(x) if group == self.tasks else self.model(x, tasks=group)
        out = {t: v.float() for t, v in out.items()}  # the losses' masked means in float32, whatever the amp mode
        losses = group_losses(out)
        loss = self.weighting.objective(losses)
        if before_backward is not None and self.spec.summed:
            before_backward(x, {t: self.weighting.weighted(t, v) for t, v in losses.items()},
                            lambda o: {t: self.weighting.weighted(t, v) for t, v in group_losses(o).items()})
        if self.spec.per_task_optimizers:
            if len(group) != 1:
                raise TaskgroupError(f"alternating-independent steps on one task at a time, not {list(group)}")
            optimizer = self._by_task[group[0]]
        else:
            optimizer = self.optimizers[0]
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.precision.backward(loss)
        self.precision.step(optimizer)
