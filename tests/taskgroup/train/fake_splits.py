"""Small synthetic splits with the SplitArrays fields (imported by the tests of this folder and its conftest)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class FakeSplit:
    """Same fields as taskgroup.data.SplitArrays: images, targets[task], masks[task]."""

    images: np.ndarray
    targets: dict
    masks: dict

    def __len__(self) -> int:
        return len(self.images)


def fake_split(n: int, seed: int, res: int = 16, holes: bool = True) -> FakeSplit:
    """Learnable targets: depth = red channel, normal = the image, segmentation = green > 0.5."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((n, 3, res // 8, res // 8)).astype(np.float32)  # 8-px blocks: the tiny trunk sees at stride 8
    images = coarse.repeat(8, axis=2).repeat(8, axis=3)
    targets = {
        "depth_zbuffer": images[:, :1].copy(),
        "normal": images.copy(),
        "segment_semantic": (images[:, 1] > 0.5).astype(np.int64),
    }
    masks = {}
    for t in targets:
        m = np.ones((n, 1, res, res), bool)
        if holes:
            m[:, :, : res // 4, :] = False  # top rows undefined
        masks[t] = m
    return FakeSplit(images, targets, masks)
