"""Quiet `torch.onnx.export`: the exporter is shared by profiling and bundle export.

torch 2.13's exporter prints progress to stdout, logs a warning per optional op it cannot
register and raises deprecation warnings from its own internals; none of it concerns the
user, and in a progress display it is noise. Errors still propagate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def quiet_onnx_export() -> Iterator[io.StringIO]:
    """Silence the exporter's stdout, warnings and `torch.onnx` log; yield the captured stdout."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    captured = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
            warnings.simplefilter("ignore")
            yield captured
    finally:
        logger.setLevel(level)
