"""Task losses (the paper's: cross-entropy for segmentation, L1 otherwise; declared tasks may
also use L2 or multi-label binary cross-entropy) and the trivial predictor that gives each
task a reference scale.

Every loss is a masked mean: only pixels whose label is defined count. On a whole split
the loss is the sum over all defined pixels (and channels) divided by their number, so it
does not depend on how the split is batched.

The trivial predictor is the best *constant* prediction under each loss, fitted on the
training split: per-channel median of the defined training pixels for L1 tasks (the median
minimises L1; the mean would not), and constant logits equal to the log training class
frequencies for segmentation (the constant that minimises cross-entropy; a hard
majority-class prediction would have infinite cross-entropy); the mean for L2 tasks; for
BCE tasks the constant logit of each label's training frequency. A trained network that does
not clearly beat it has learnt nothing about the image.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from taskgroup.tasks import get_task

TRIVIAL_PREDICTOR = ("per-channel median of the training targets for L1 tasks, mean for L2; "
                     "log training class frequencies as constant logits for cross-entropy; "
                     "logit of each label's training frequency for BCE")


def loss_sum_count(task: str, pred, target, mask, scale=None):
    """(sum of per-pixel losses over defined pixels and channels, number of terms) as tensors.

    `scale` (C,): the std of each channel of a standardised L1 or L2 task; errors become errors
    in the dataset's units (L1: |e| * std; L2: e^2 * std^2).
    """
    import torch
    import torch.nn.functional as F

    loss = get_task(task).loss
    if loss == "cross_entropy":
        if mask is None:
            ce = F.cross_entropy(pred, target, reduction="sum")
            return ce, torch.tensor(float(target.numel()))
        m = mask[:, 0]
        ce = F.cross_entropy(pred, torch.where(m, target, torch.zeros_like(target)), reduction="none")
        return (ce * m).sum(), m.sum().to(ce.dtype)
    if loss == "bce":
        err = F.binary_cross_entropy_with_logits(pred, target, reduction="none")
    elif loss == "l2":
        err = (pred - target) ** 2
    else:
        err = (pred - target).abs()
    if scale is not None and loss in ("l1", "l2"):
        s = scale.to(torch.float64).view(1, -1, 1, 1)
        err = err.double() * (s if loss == "l1" else s * s)
    if mask is None:
        return err.sum(), torch.tensor(float(err.numel()))
    return (err * mask).sum(), mask.sum().to(err.dtype) * pred.shape[1]


def loss_mean(task: str, pred, target, mask):
    """Masked mean loss of one batch (what the optimiser minimises)."""
    if mask is None:  # every label defined: the plain mean, which is the same number, computed faster
        import torch.nn.functional as F

        loss = get_task(task).loss
        if loss == "cross_entropy":
            return F.cross_entropy(pred, target)
        if loss == "bce":
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target) if loss == "l2" else F.l1_loss(pred, target)
    total, count = loss_sum_count(task, pred, target, mask)
    return total / count.clamp_min(1.0)


def fit_trivial(task: str, targets: np.ndarray, masks: np.ndarray | None, chunk: int = 256) -> np.ndarray:
    """Fit the constant predictor on training arrays: per-channel medians (L1), means (L2), logits of
    label frequencies (BCE), or log class frequencies (cross-entropy)."""
    spec = get_task(task)
    n = len(targets)
    if spec.loss == "cross_entropy":
        counts = np.zeros(spec.channels, dtype=np.float64)  # grows if the data has more classes (Taskonomy)
        for s in range(0, n, chunk):
            t = np.asarray(targets[s:s + chunk])
            m = np.ones(t.shape, bool) if masks is None else np.asarray(masks[s:s + chunk])[:, 0]
            chunk_counts = np.bincount(t[m].ravel(), minlength=len(counts))
            counts = np.pad(counts, (0, len(chunk_counts) - len(counts))) + chunk_counts
        freq = (counts + 1.0) / (counts.sum() + len(counts))  # add-one smoothing keeps every log finite
        return np.log(freq).astype(np.float32)
    medians = np.zeros(spec.channels, dtype=np.float32)
    for c in range(spec.channels):
        values = []
        for s in range(0, n, chunk):
            t = np.asarray(targets[s:s + chunk, c])
            values.append(t.ravel() if masks is None else t[np.asarray(masks[s:s + chunk, 0])])
        v = np.concatenate(values).astype(np.float64)
        if spec.loss == "l1":
            medians[c] = np.median(v) if v.size else 0.0
        elif spec.loss == "l2":
            medians[c] = v.mean() if v.size else 0.0
        else:  # bce: the logit of the label's frequency, kept finite
            p = min(max(v.mean() if v.size else 0.5, 1e-6), 1 - 1e-6)
            medians[c] = np.log(p / (1 - p))
    return medians


def trivial_loss(task: str, constant: np.ndarray, targets: np.ndarray, masks: np.ndarray | None, chunk: int = 256) -> float:
    """Loss of the constant predictor on a split, with the same masked-mean definition as training."""
    spec = get_task(task)
    total, count = 0.0, 0.0
    if spec.loss == "cross_entropy":
        log_p = constant - np.log(np.exp(constant).sum())  # log-softmax of the constant logits
    for s in range(0, len(targets), chunk):
        t = np.asarray(targets[s:s + chunk])
        if spec.loss == "cross_entropy":
            m = np.ones(t.shape, bool) if masks is None else np.asarray(masks[s:s + chunk])[:, 0]
            total += float(-log_p[t[m]].sum(dtype=np.float64))
            count += float(m.sum())
        else:
            c = constant.reshape(1, -1, 1, 1).astype(np.float64)
            if spec.loss == "bce":  # -(t log sigmoid(c) + (1 - t) log(1 - sigmoid(c))), stably
                err = t * np.logaddexp(0.0, -c) + (1 - t) * np.logaddexp(0.0, c)
            elif spec.loss == "l2":
                err = (t - c) ** 2
            else:
                err = np.abs(t - c)
            m = np.ones(t.shape[:1] + (1,) + t.shape[2:], bool) if masks is None else np.asarray(masks[s:s + chunk])
            total += float((err * m).sum(dtype=np.float64))
            count += float(m.sum()) * t.shape[1]
    return total / max(count, 1.0)


def reference_losses(train: Any, splits: dict[str, Any], tasks: Sequence[str]
                     ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """(task -> split -> trivial-predictor loss, task -> fitted constant), fitted on `train`
    (SplitArrays-like: .targets, .masks)."""
    out: dict[str, dict[str, float]] = {}
    constants: dict[str, np.ndarray] = {}
    for task in tasks:
        constants[task] = constant = fit_trivial(task, train.targets[task], train.masks.get(task))
        out[task] = {name: trivial_loss(task, constant, s.targets[task], s.masks.get(task)) for name, s in splits.items()}
    return out, constants
