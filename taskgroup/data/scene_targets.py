"""The built-in scenes' targets: fixed encodings of each task, computed from one render.

Every target comes from the same ray hits, so they agree exactly: depth, normals and
curvatures from the analytic geometry, reshading from the normals, occlusion edges from depth
jumps, texture edges (Canny) and keypoints (Harris) from the rendered image. The encodings are
documented in docs/data.md; TARGET_UNITS says what each target's values are.
"""

from __future__ import annotations

import math

import numpy as np

from taskgroup.data.raytrace import Render
from taskgroup.tasks import SEGMENT_CLASSES

# --- fixed encodings of the targets (documented in docs/data.md) ---------------------------
MAX_DEPTH_M = 20.0  # z-depth encoded as log(1 + z) / log(1 + MAX_DEPTH_M); beyond it: masked
CURVATURE_SCALE_M = 0.25  # curvature k (1/m) encoded as 0.5 + 0.5 * tanh(k * CURVATURE_SCALE_M): the objects'
#   radii (0.15-0.6 m) map to 0.70-0.97 instead of crowding just above 0.5
RESHADING_LIGHT_CAM = np.array([-0.4, 0.5, math.sqrt(1 - 0.4**2 - 0.5**2)])  # unit vector to the light, camera frame (x right, y up, z back)
KEYPOINT_SCALE = 1e-4  # Harris response R encoded as 1 - exp(-max(R, 0) / KEYPOINT_SCALE)
CANNY_THRESHOLDS = (60, 140)  # Canny hysteresis thresholds on the 8-bit grey image (after a 3x3 blur)
OCCLUSION_JUMP = 0.03  # relative depth jump between different surfaces that counts as an occlusion edge
SELF_OCCLUSION_JUMP = 0.3  # relative depth jump within one surface that counts as an occlusion edge
EDGE_BLUR_SIGMA_PX = 2.0  # edge strength = binary edges blurred by a Gaussian of this sigma (pixels) ...
EDGE_BLUR_RADIUS_PX = 6  # ... truncated at this radius (3 sigma): farther from every edge the strength is 0


def encode_depth(z: np.ndarray) -> np.ndarray:
    return (np.log1p(np.minimum(z, MAX_DEPTH_M)) / math.log1p(MAX_DEPTH_M)).astype(np.float32)


def decode_depth(encoded: np.ndarray) -> np.ndarray:
    return np.expm1(np.asarray(encoded, np.float64) * math.log1p(MAX_DEPTH_M))


def encode_curvature(k: np.ndarray) -> np.ndarray:
    return (0.5 + 0.5 * np.tanh(k * CURVATURE_SCALE_M)).astype(np.float32)


def decode_curvature(encoded: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(encoded, np.float64), 1e-7, 1 - 1e-7)
    return np.arctanh(2 * c - 1) / CURVATURE_SCALE_M


# --- targets -------------------------------------------------------------------------------
def occlusion_edges(z: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """1 where a pixel and a 4-neighbour differ in depth across an occlusion, else 0; (V, H, W)."""
    edge = np.zeros(z.shape, bool)
    for axis in (1, 2):
        za, zb = np.moveaxis(z, axis, 0)[:-1], np.moveaxis(z, axis, 0)[1:]
        sa, sb = np.moveaxis(surface, axis, 0)[:-1], np.moveaxis(surface, axis, 0)[1:]
        jump = np.abs(za - zb) / np.minimum(za, zb)
        e = ((sa != sb) & (jump > OCCLUSION_JUMP)) | (jump > SELF_OCCLUSION_JUMP)
        em = np.moveaxis(edge, axis, 0)  # a view: writes go through to `edge`
        em[:-1] |= e
        em[1:] |= e
    return edge


def edge_strength(edges: np.ndarray) -> np.ndarray:
    """Soft edge-strength map of binary edges (H, W): Gaussian blur, scaled so that a straight
    1-px edge line reads 1 on the line, clipped to [0, 1]; float32.

    The scale is the centre weight of the 1-D kernel (a straight line blurred in 2-D is the 1-D
    kernel across it). Where edges are denser than one line per ~2 sigma the strength saturates
    at 1; beyond EDGE_BLUR_RADIUS_PX from every edge pixel it is exactly 0. Borders replicate the
    outermost pixels, so an edge along the image border reads like one inside.
    """
    import cv2

    size = 2 * EDGE_BLUR_RADIUS_PX + 1
    peak = float(cv2.getGaussianKernel(size, EDGE_BLUR_SIGMA_PX, cv2.CV_64F)[EDGE_BLUR_RADIUS_PX, 0])
    blurred = cv2.GaussianBlur(np.asarray(edges, np.float32), (size, size), EDGE_BLUR_SIGMA_PX,
                               borderType=cv2.BORDER_REPLICATE)
    return np.clip(blurred / peak, 0.0, 1.0).astype(np.float32)


def canny_edges(image: np.ndarray) -> np.ndarray:
    """Binary Canny texture edges (H, W) of one (H, W, 3) image in [0, 1]."""
    import cv2

    grey8 = cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    return cv2.Canny(cv2.GaussianBlur(grey8, (3, 3), 0.8), *CANNY_THRESHOLDS, L2gradient=True) > 0


def image_edges_and_keypoints(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture-edge strength (soft Canny) and Harris keypoint response of one (H, W, 3) image, both in [0, 1]."""
    import cv2

    grey8 = cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2GRAY)
    harris = cv2.cornerHarris(grey8.astype(np.float32) / 255.0, 2, 3, 0.04)
    keypoints = 1.0 - np.exp(-np.maximum(harris, 0.0) / KEYPOINT_SCALE)
    keypoints = cv2.GaussianBlur(keypoints.astype(np.float32), (5, 5), 1.0)
    return edge_strength(canny_edges(image)), np.clip(keypoints, 0.0, 1.0)


def encode_targets(r: Render) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Images (V, 3, H, W), targets in the contract's encodings, and the validity mask (V, 1, H, W)."""
    chw = lambda a: np.ascontiguousarray(np.moveaxis(a, -1, 1), dtype=np.float32)  # noqa: E731
    images = chw(r.image)
    n_cam = r.normal / np.linalg.norm(r.normal, axis=-1, keepdims=True)
    texture, keypoints = zip(*(image_edges_and_keypoints(im) for im in r.image))
    targets = {
        "segment_semantic": r.class_id.astype(np.int64),
        "depth_zbuffer": encode_depth(r.z)[:, None],
        "normal": chw((n_cam + 1) / 2),
        "reshading": np.maximum(0.0, n_cam @ RESHADING_LIGHT_CAM).astype(np.float32)[:, None],
        "edge_occlusion": np.stack([edge_strength(e) for e in occlusion_edges(r.z, r.surface)])[:, None],
        "edge_texture": np.stack(texture)[:, None],
        "keypoints2d": np.stack(keypoints)[:, None],
        "principal_curvature": chw(encode_curvature(r.curvature)),
        "rgb": images,
    }
    mask = (r.z < MAX_DEPTH_M)[:, None]
    return images, targets, mask


# --- the dataset ---------------------------------------------------------------------------
TARGET_TASKS = ("segment_semantic", "depth_zbuffer", "normal", "reshading", "edge_occlusion", "edge_texture",
                "keypoints2d", "principal_curvature", "rgb")
# What each target's values are (its units in bundles and loss tables) and their range.
TARGET_UNITS: dict[str, tuple[str, tuple[float, float] | None]] = {
    "segment_semantic": (f"class id into {list(SEGMENT_CLASSES)}", None),
    "depth_zbuffer": ("log(1 + z) / log(21), z = depth along the optical axis in metres", (0.0, 1.0)),
    "normal": ("(n + 1) / 2 per channel, n = unit surface normal in the camera frame (x right, y up, z towards "
               "the camera)", (0.0, 1.0)),
    "reshading": ("max(0, n . l) for the fixed camera-frame light l = (-0.4, 0.5, 0.768)", (0.0, 1.0)),
    "edge_occlusion": ("occlusion-edge strength: 1 on an edge, exp(-d^2 / 8) at d pixels from it", (0.0, 1.0)),
    "edge_texture": ("texture-edge strength: 1 on a Canny edge, exp(-d^2 / 8) at d pixels from it", (0.0, 1.0)),
    "keypoints2d": ("1 - exp(-max(R, 0) / 1e-4), R = Harris corner response, blurred (sigma 1 px)", (0.0, 1.0)),
    "principal_curvature": ("0.5 + 0.5 tanh(0.25 m * k) per channel, k = larger, smaller principal curvature "
                            "in 1/m", (0.0, 1.0)),
    "rgb": ("RGB in [0, 1]", (0.0, 1.0)),
}
