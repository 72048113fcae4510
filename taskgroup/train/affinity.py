"""Inter-task affinity measured during training, without changing the training.

Every `every` optimiser steps, on the step's own batch and before the real update:
1. the gradient of each task's loss L_i on the shared (trunk) parameters, through the same
   graph the real backward uses (so the model's 1/sqrt(number of tasks) scaling of trunk
   gradients is included, exactly as the optimizer sees it);
2. for each source task i, the lookahead theta_i': the shared parameters after the step the
   optimizer would take if L_i's gradient were the whole batch gradient, with its real
   update rule and state (torch.optim.SGD: weight decay, momentum buffers, dampening,
   Nesterov, maximize, the current learning rate). Heads keep their weights;
3. every task's loss on the same batch at theta_i' and A[i][j] = 1 - L_j(theta_i') / L_j(theta),
   L_j(theta) being the real forward's loss (TAG, Fifty et al. 2021); also the cosine similarity
   of the per-task gradients on the shared parameters;
4. the same lookahead without the momentum buffer (`tag-nomomentum`: theta_i' = theta - lr x
   (grad L_i + weight decay x theta)). The buffer carries the previous steps of every task and is
   the same whichever task is the source, so it moves every lookahead alike: it pulls the rows
   of A towards each other (a step on any task mostly lowers every loss). Both are measured on
   the same batches of the same run, at one more forward pass per task.

Nothing of the real run changes: parameters, gradients, optimizer state and the torch RNG are
left as they were, and the lookahead forward passes run with the model's BatchNorm buffers
replaced by throw-away copies, so running statistics are not updated. BatchNorm normalises with
the batch's own statistics in the lookahead exactly as in the real forward (the model is in
train mode), so L_j(theta_i') and L_j(theta) differ only by the lookahead step; evaluating the
lookahead in eval mode (running statistics) would mix a change of normalisation into the ratio.

TAG's published Taskonomy code differs in two ways: its lookahead omits the momentum term (it
looks for the momentum buffer in the param-group dictionary, which never holds it; `tag-nomomentum`
is that lookahead) and its lookahead forward passes update the BatchNorm running statistics of the
real model (avoided here).
It also divides each affinity by the learning rate; here A is the plain relative loss change.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import torch

from taskgroup.affinity import ALL_KINDS
from taskgroup.errors import TaskgroupError


def shared_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of the parameters every task's loss depends on: all but the heads'."""
    shared = [(n, p) for n, p in model.named_parameters() if not n.startswith("heads.") and p.requires_grad]
    if not shared:
        raise TaskgroupError(f"{type(model).__name__}: no shared parameters outside `heads` to measure affinity on")
    return shared


def sgd_lookahead(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                  grads: Sequence[torch.Tensor], with_momentum: bool = True) -> list[torch.Tensor]:
    """New values of `params` after `optimizer.step()` with gradients `grads`, without changing
    the parameters or the optimizer state: the arithmetic of torch.optim.SGD's update, in its order.
    `with_momentum=False`: the step without the momentum buffer, lr x (grad + weight decay x param)."""
    if type(optimizer) is not torch.optim.SGD:
        raise TaskgroupError(f"affinity lookahead reproduces torch.optim.SGD only, not {type(optimizer).__name__}")
    groups = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    out = []
    with torch.no_grad():
        for p, grad in zip(params, grads, strict=True):
            group = groups.get(id(p))
            if group is None:
                raise TaskgroupError("affinity lookahead: a shared parameter is not in the optimizer")
            if group.get("fused") or group.get("differentiable"):
                raise TaskgroupError("affinity lookahead: fused or differentiable SGD is not reproduced")
            wd, momentum, lr = group["weight_decay"], group["momentum"], float(group["lr"])
            d = -grad if group["maximize"] else grad
            if wd != 0:
                d = d.add(p, alpha=wd)
            if momentum != 0 and with_momentum:
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                buf = d.detach().clone() if buf is None else buf.mul(momentum).add_(d, alpha=1 - group["dampening"])
                d = d.add(buf, alpha=momentum) if group["nesterov"] else buf
            out.append(p.add(d, alpha=-lr))
    return out


class AffinityTracker:
    """Accumulates the TAG and cosine affinity matrices of one training run (see the module doc)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, tasks: Sequence[str], every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise TaskgroupError(f"affinity_every must be a positive integer, got {every!r}")
        if len(tasks) < 2:
            raise TaskgroupError(f"affinity needs a network of at least two tasks, got {list(tasks)}")
        self.model, self.optimizer, self.tasks, self.every = model, optimizer, tuple(tasks), every
        self.shared = shared_parameters(model)
        n = len(self.tasks)
        self._sums = {k: torch.zeros(n, n, dtype=torch.float64) for k in ALL_KINDS}
        self.steps = 0
        self.seconds = 0.0

    def due(self, step: int) -> bool:
        """Measure before the optimiser step taken after `step` completed steps (0, every, 2 every, ...)."""
        return step % self.every == 0

    def measure(self, x: torch.Tensor, losses: Mapping[str, torch.Tensor],
                task_losses: Callable[[dict[str, torch.Tensor]], Mapping[str, torch.Tensor]]) -> None:
        """One measurement on the batch `x`, whose real forward gave `losses` (task -> loss with its
        graph, before backward). `task_losses(outputs)` computes every task's loss on this batch."""
        start = time.perf_counter()
        rng = torch.get_rng_state()
        names = [n for n, _ in self.shared]
        params = [p for _, p in self.shared]
        grads = {t: torch.autograd.grad(losses[t], params, retain_graph=True) for t in self.tasks}
        current = {t: float(losses[t].detach()) for t in self.tasks}
        flat = torch.stack([torch.cat([g.reshape(-1) for g in grads[t]]).double() for t in self.tasks])
        norms = flat.norm(dim=1)
        cosine = (flat @ flat.T) / torch.outer(norms, norms).clamp_min(torch.finfo(torch.float64).tiny)
        lookahead = {"tag": True, "tag-nomomentum": False}  # kind -> with the momentum buffer
        tags = {kind: torch.zeros_like(self._sums[kind]) for kind in lookahead}
        # Throw-away copies of the buffers: train-mode BatchNorm updates these, not the model's.
        scratch = {n: b.clone() for n, b in self.model.named_buffers()}
        with torch.no_grad():
            for kind, with_momentum in lookahead.items():
                for i, source in enumerate(self.tasks):
                    moved = dict(zip(names, sgd_lookahead(self.optimizer, params, grads[source], with_momentum)))
                    after = task_losses(torch.func.functional_call(self.model, {**scratch, **moved}, (x,)))
                    for j, target in enumerate(self.tasks):
                        tags[kind][i, j] = 1.0 - float(after[target]) / current[target]
        if not (all(torch.isfinite(t).all() for t in tags.values()) and torch.isfinite(cosine).all()):
            raise TaskgroupError(f"affinity: a task loss is zero or not finite (losses {current}); "
                                 "lower [train] lr or train without affinity")
        for kind, matrix in tags.items():
            self._sums[kind] += matrix
        self._sums["cosine"] += cosine.cpu()  # the sums stay on the CPU whatever the training device
        self.steps += 1
        torch.set_rng_state(rng)
        self.seconds += time.perf_counter() - start

    def result(self) -> dict:
        """The mean over the measurements so far: steps, every, seconds and one n x n list per kind."""
        if self.steps == 0:
            raise TaskgroupError("affinity: no step was measured")
        doc = {"steps": self.steps, "every": self.every, "seconds": self.seconds}
        for kind, total in self._sums.items():
            doc[kind] = (total / self.steps).tolist()
        return doc
