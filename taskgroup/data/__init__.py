"""Data for training and evaluation: built-in procedural scenes, a Taskonomy directory, or
images and label files in plain folders.

`open_split(DataConfig(...), "train", tasks)` returns memory-mapped `SplitArrays`; see
docs/data.md for the scenes, the target encodings, the cache and the Taskonomy layout.
Importing this package does not import torch.
"""

from taskgroup.data.config import DataConfig, SPLITS
from taskgroup.data.split import SplitArrays, open_split

__all__ = ["DataConfig", "SPLITS", "SplitArrays", "open_split"]
