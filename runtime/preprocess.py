"""Turn a camera frame into the model input the manifest describes.

Accepted: uint8 HWC RGB (one frame or a batch), converted to float32 NCHW / 255; or
float32 NCHW RGB in [0, 1], used as is. Anything else is refused with a RuntimeInputError
saying what was expected, so a CHW/HWC or 0..255/0..1 mix-up fails loudly instead of
silently producing garbage; masked arrays too (their masked values would escape the checks).
Colour order cannot be checked: the caller declares it (`color_order`, RGB by default; OpenCV
gives BGR), and BGR frames have their channels reversed first.

A uint8 frame of another size than the bundle's is resized by the rule the manifest records
(`input.resize`: the training loader's area averaging, runtime.resize), then rounded to uint8
for a fused graph or divided by 255 for float32 networks. Bundles exported before that rule was
recorded take their own size only; float32 frames always do (pass the uint8 camera frame to
have it resized).

A fused bundle's graph takes the uint8 frame itself and converts it inside (the same
operations as here, so the values are bit-identical): uint8 frames pass through untouched,
and float32 frames are turned back into the 8-bit values they hold, exactly, or refused when
they hold values between 8-bit steps (the graph cannot represent them).
"""

from __future__ import annotations

import numpy as np

from taskgroup_runtime.errors import RuntimeInputError
from taskgroup_runtime.specs import COLOR_ORDERS, FRAME_FORMS, InputSpec
from taskgroup_runtime.resize import resize_area

MAX_FRAME_SIDE = 16384  # larger frames are refused rather than resized (a wrong array, not a camera frame)


def _forms() -> str:
    return "accepted frames: " + "; ".join(FRAME_FORMS)


def to_network_input(frame: object, spec: InputSpec, color_order: str = "RGB") -> np.ndarray:
    """Validate `frame` and return the model input: C-contiguous float32 (N, 3, H, W), or uint8 (N, H, W, 3)
    for a fused graph."""
    if color_order not in COLOR_ORDERS:
        raise RuntimeInputError(f"unknown color_order {color_order!r}; valid options: {', '.join(COLOR_ORDERS)}")
    if not isinstance(frame, np.ndarray):
        raise RuntimeInputError(f"frame must be a numpy array, got {type(frame).__name__}; {_forms()}")
    if isinstance(frame, np.ma.MaskedArray):
        # Reductions skip masked entries, so NaN under the mask would pass the checks below, and the
        # networks cannot honour a mask anyway.
        raise RuntimeInputError("masked arrays are not accepted (the networks see every pixel); pass a plain array, "
                                f"e.g. frame.filled(0); {_forms()}")
    frame = np.asarray(frame)  # other ndarray subclasses (np.memmap, ...) as plain arrays
    h, w = spec.height, spec.width
    if frame.dtype == np.uint8:
        batch = frame[None] if frame.ndim == 3 else frame
        if batch.ndim != 4:
            raise RuntimeInputError(f"uint8 frame has shape {frame.shape}; expected (H, W, 3) or (N, H, W, 3); {_forms()}")
        if batch.shape[-1] != 3:
            raise RuntimeInputError(f"uint8 frame has {batch.shape[-1]} channels in its last axis (shape {frame.shape}); "
                                    f"expected 3 (RGB, HWC layout); {_forms()}")
        if batch.shape[0] == 0 or 0 in batch.shape[1:3]:
            raise RuntimeInputError(f"empty frame or batch (shape {frame.shape})")
        if color_order == "BGR":
            batch = batch[..., ::-1]
        if batch.shape[1:3] != (h, w):
            if spec.resize is None:
                raise RuntimeInputError(f"frame is {batch.shape[1]}x{batch.shape[2]} (HxW), the bundle expects {h}x{w} "
                                        "(its manifest records no resize rule: export it again to have frames of any "
                                        "size resized as the training images were)")
            if max(batch.shape[1:3]) > MAX_FRAME_SIDE:
                raise RuntimeInputError(f"frame is {batch.shape[1]}x{batch.shape[2]} (HxW); frames up to "
                                        f"{MAX_FRAME_SIDE} pixels a side are resized")
            resized = resize_area(batch, h, w)  # float64, 0..255
            if spec.dtype == "uint8":
                return np.ascontiguousarray(np.clip(np.rint(resized), 0, 255).astype(np.uint8))
            return np.ascontiguousarray(np.clip(resized * (1.0 / 255.0), 0, 1).astype(np.float32).transpose(0, 3, 1, 2))
        if spec.dtype == "uint8":
            return np.ascontiguousarray(batch)
        x = np.empty((batch.shape[0], 3, h, w), dtype=np.float32)
        np.multiply(batch.transpose(0, 3, 1, 2), np.float32(1.0 / 255.0), out=x, casting="unsafe")
        return x
    if frame.dtype == np.float32:
        batch = frame[None] if frame.ndim == 3 else frame
        if batch.ndim != 4:
            raise RuntimeInputError(f"float32 frame has shape {frame.shape}; expected (3, H, W) or (N, 3, H, W); {_forms()}")
        if batch.shape[1] != 3:
            raise RuntimeInputError(f"float32 frame has {batch.shape[1]} channels in axis 1 (shape {frame.shape}); "
                                    f"expected 3 (RGB, NCHW layout); {_forms()}")
        if batch.shape[2:] != (h, w):
            raise RuntimeInputError(f"frame is {batch.shape[2]}x{batch.shape[3]} (HxW), the bundle expects {h}x{w}"
                                    + (" (float32 frames are not resized: pass the uint8 camera frame)"
                                       if spec.resize else ""))
        if batch.shape[0] == 0:
            raise RuntimeInputError("empty batch (N = 0)")
        if color_order == "BGR":
            batch = batch[:, ::-1]
        lo, hi = float(batch.min()), float(batch.max())  # NaN propagates through min/max
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RuntimeInputError("float32 frame contains NaN or infinity")
        low, high = (0.0, 1.0) if spec.dtype == "uint8" else spec.value_range  # float frames are in [0, 1]
        if lo < low or hi > high:
            raise RuntimeInputError(f"float32 frame values span [{lo:g}, {hi:g}]; expected [{low:g}, {high:g}] "
                                    "(divide 0..255 images by 255, or pass uint8)")
        if spec.dtype == "uint8":
            return _as_8bit(batch)
        return np.ascontiguousarray(batch)
    raise RuntimeInputError(f"frame dtype {frame.dtype} is not supported; {_forms()}")


# float32 frames of 8-bit images (k / 255) are k to within float rounding (about 3e-5 at most).
_8BIT_TOLERANCE = 1e-3


def _as_8bit(batch: np.ndarray) -> np.ndarray:
    """The uint8 NHWC frame a float32 NCHW frame in [0, 1] holds, exactly; refused if it holds other values."""
    scaled = batch * np.float32(255.0)
    levels = np.rint(scaled)
    off = float(np.max(np.abs(scaled - levels)))
    if off > _8BIT_TOLERANCE:
        raise RuntimeInputError(f"this bundle's fused graph takes 8-bit frames; the float32 frame holds values between "
                                f"8-bit steps (up to {off / 255:.2g} off a multiple of 1/255). Pass the uint8 image, or "
                                "export without --fuse to feed continuous values")
    return np.ascontiguousarray(levels.astype(np.uint8).transpose(0, 2, 3, 1))
