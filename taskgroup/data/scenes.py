"""Built-in procedural scenes: rooms with primitive shapes, ray cast in numpy.

A *layout* (the analogue of a Taskonomy building) is a room (floor, four walls, ceiling)
holding a few primitives (spheres, boxes, cylinders, cones, tori) with random colours and
solid procedural textures (plain, stripes, checks, smooth noise), lit by a point light with
hard shadows. Several camera *views* are rendered per layout. Every target is computed from
the same ray hits, so they agree with each other exactly:

- depth, normals and principal curvatures come from the analytic geometry of the hit surface;
- reshading is Lambertian shading of those normals under a fixed camera-relative light;
- occlusion edges are depth jumps between different surfaces (or large self-occlusion jumps);
- texture edges (Canny) and keypoints (Harris) are computed on the rendered image, so they
  depend on surface textures, as in Taskonomy.

Both edge targets are soft edge-strength maps (the 1-px binary edges blurred by a Gaussian and
scaled so a straight 1-px edge line reads 1), like Taskonomy's continuous 16-bit edge images:
under L1 a binary 1-px line has a per-pixel median of 0 almost everywhere, so the constant 0
is hard to beat, while a smooth strength map rewards predicting where edges are.

Colours and textures are drawn independently of the shape class, so segmentation must be
learned from shape, not colour. All views of one layout are ray cast together as one batch
of rays, which keeps numpy's per-call overhead small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

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
FOV_DEG = 60.0  # horizontal (= vertical) field of view of every camera
AMBIENT_RANGE = (0.15, 0.35)
LIGHT_RANGE = (1.0, 1.6)

SHAPES = ("sphere", "box", "cylinder", "cone", "torus")
ROOM_FACES = ("floor", "ceiling", "wall", "wall", "wall", "wall")  # face index -> class name
PATTERNS = ("plain", "stripes", "checks", "noise")
EPS = 1e-6


def encode_depth(z: np.ndarray) -> np.ndarray:
    return (np.log1p(np.minimum(z, MAX_DEPTH_M)) / math.log1p(MAX_DEPTH_M)).astype(np.float32)


def decode_depth(encoded: np.ndarray) -> np.ndarray:
    return np.expm1(np.asarray(encoded, np.float64) * math.log1p(MAX_DEPTH_M))


def encode_curvature(k: np.ndarray) -> np.ndarray:
    return (0.5 + 0.5 * np.tanh(k * CURVATURE_SCALE_M)).astype(np.float32)


def decode_curvature(encoded: np.ndarray) -> np.ndarray:
    c = np.clip(np.asarray(encoded, np.float64), 1e-7, 1 - 1e-7)
    return np.arctanh(2 * c - 1) / CURVATURE_SCALE_M


def intrinsics(resolution: int) -> tuple[float, float, float]:
    """(focal length in pixels, cx, cy); pixel (row i, col j) has its centre at (j + 0.5, i + 0.5)."""
    f = (resolution / 2) / math.tan(math.radians(FOV_DEG) / 2)
    return f, resolution / 2, resolution / 2


# --- scene description ---------------------------------------------------------------------
@dataclass
class Material:
    colors: np.ndarray  # (2, 3) RGB in [0, 1]; the pattern blends between them
    pattern: str  # one of PATTERNS
    freq: float  # pattern frequency, cycles per metre
    axis: np.ndarray  # (3,) unit direction of stripes
    offset: np.ndarray  # (3,) shift of the pattern lattice (keeps lattice lines off planar faces)
    waves: np.ndarray  # (3, 4) noise: three wave vectors (rad/m) and phases


@dataclass
class Primitive:
    shape: str  # one of SHAPES
    center: np.ndarray  # (3,) world position of the local origin
    rotation: np.ndarray  # (3, 3) world -> local rotation
    size: tuple[float, ...]  # sphere (r,), box half extents (a, b, c), cylinder/cone (r, h), torus (R, r)
    material: Material


@dataclass
class Layout:
    room: np.ndarray  # (3,) extents: x in [-X/2, X/2], y in [0, Y], z in [-Z/2, Z/2]
    room_materials: list[Material]  # one per face: floor, ceiling, walls -x, +x, -z, +z
    objects: list[Primitive]
    light: np.ndarray  # (3,) point light position
    light_power: float  # diffuse intensity at 1 m
    ambient: float  # ambient light level


@dataclass
class Camera:
    eye: np.ndarray  # (3,) position
    target: np.ndarray  # (3,) point looked at (no roll; world up is +y)

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors; the camera frame is x = right, y = up, z = -forward."""
        f = self.target - self.eye
        f = f / np.linalg.norm(f)
        r = np.cross(f, [0.0, 1.0, 0.0])
        r = r / np.linalg.norm(r)
        return r, np.cross(r, f), f


@dataclass
class Render:
    """Raw per-pixel quantities of a batch of views, each (V, H, W[, C])."""
    image: np.ndarray  # float32 RGB in [0, 1], (V, H, W, 3)
    z: np.ndarray  # metric z-buffer depth along the camera axis
    normal: np.ndarray  # unit normal in the camera frame (x right, y up, z towards the camera)
    curvature: np.ndarray  # (V, H, W, 2): principal curvatures (max, min) in 1/m, convex positive
    class_id: np.ndarray  # int64 index into SEGMENT_CLASSES
    surface: np.ndarray  # int: 0 = room (all faces), 1 + k = object k
    cameras: list[Camera] = field(default_factory=list)


# --- random layouts and cameras ------------------------------------------------------------
def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]])


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1)


def random_material(rng: np.random.Generator) -> Material:
    """Colours and pattern drawn independently of what the surface is."""
    c1 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.35, 1.0))
    if rng.uniform() < 0.5:
        c2 = _hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 0.9), rng.uniform(0.2, 1.0))
    else:
        c2 = c1 * rng.uniform(0.3, 0.6)
    axis = rng.normal(size=3)
    waves = np.concatenate([rng.normal(size=(3, 3)) * rng.uniform(4, 12), rng.uniform(0, 2 * np.pi, (3, 1))], axis=1)
    return Material(colors=np.stack([c1, c2]), pattern=str(rng.choice(PATTERNS)), freq=float(rng.uniform(2.5, 7.0)),
                    axis=axis / np.linalg.norm(axis), offset=rng.uniform(0.1, 0.9, 3), waves=waves)


def random_primitive(rng: np.random.Generator, shape: str) -> tuple[tuple[float, ...], np.ndarray, float, float]:
    """(size, local rotation, height of the centre above the floor, footprint radius) for a resting shape."""
    yaw = _rotation_y(rng.uniform(0, 2 * np.pi))
    if shape == "sphere":
        r = rng.uniform(0.2, 0.6)
        return (r,), yaw, r, r
    if shape == "box":
        a, b, c = rng.uniform(0.15, 0.6, 3)
        return (a, b, c), yaw, b, math.hypot(a, c)
    if shape == "cylinder":
        r, h = rng.uniform(0.15, 0.45), rng.uniform(0.4, 1.4)
        if rng.uniform() < 0.3:  # lying on its side
            return (r, h), _rotation_x(np.pi / 2) @ yaw, r, math.hypot(r, h / 2)
        return (r, h), yaw, h / 2, r
    if shape == "cone":
        r, h = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.4)
        return (r, h), yaw, h / 2, r
    if shape == "torus":
        big = rng.uniform(0.3, 0.6)
        small = rng.uniform(0.06, 0.45 * big)
        if rng.uniform() < 0.4:  # standing on its rim
            return (big, small), _rotation_x(np.pi / 2) @ yaw, big + small, big + small
        return (big, small), yaw, small, big + small
    raise ValueError(f"unknown shape {shape!r}")


def random_layout(rng: np.random.Generator) -> Layout:
    room = np.array([rng.uniform(4.0, 8.0), rng.uniform(2.5, 3.5), rng.uniform(4.0, 8.0)])
    objects: list[Primitive] = []
    footprints: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(5, 11))):
        shape = str(rng.choice(SHAPES))
        size, rotation, height, radius = random_primitive(rng, shape)
        for _attempt in range(20):
            x = rng.uniform(-room[0] / 2 + radius + 0.1, room[0] / 2 - radius - 0.1)
            z = rng.uniform(-room[2] / 2 + radius + 0.1, room[2] / 2 - radius - 0.1)
            if all(math.hypot(x - fx, z - fz) > radius + fr + 0.05 for fx, fz, fr in footprints):
                footprints.append((x, z, radius))
                objects.append(Primitive(shape, np.array([x, height, z]), rotation, size, random_material(rng)))
                break
    light = np.array([rng.uniform(-room[0] / 2 + 0.3, room[0] / 2 - 0.3), room[1] - 0.25,
                      rng.uniform(-room[2] / 2 + 0.3, room[2] / 2 - 0.3)])
    return Layout(room=room, room_materials=[random_material(rng) for _ in range(6)], objects=objects, light=light,
                  light_power=float(rng.uniform(*LIGHT_RANGE)), ambient=float(rng.uniform(*AMBIENT_RANGE)))


def random_camera(rng: np.random.Generator, layout: Layout) -> Camera:
    """A camera inside the room, outside every object, usually looking at an object from 0.9-2.8 m."""
    room = layout.room
    margin = 0.4
    inside = lambda p: (abs(p[0]) < room[0] / 2 - margin) and (abs(p[2]) < room[2] / 2 - margin)  # noqa: E731
    clear = lambda p: all(math.hypot(p[0] - o.center[0], p[2] - o.center[2]) > _footprint(o) + 0.3  # noqa: E731
                          for o in layout.objects)
    focus = layout.objects[int(rng.integers(len(layout.objects)))] if layout.objects and rng.uniform() < 0.85 else None
    eye = None
    for _attempt in range(50):
        if focus is not None and _attempt < 30:
            azimuth, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.9, 2.8)
            cand = np.array([focus.center[0] + dist * math.cos(azimuth), rng.uniform(0.8, 2.0),
                             focus.center[2] + dist * math.sin(azimuth)])
        else:
            cand = np.array([rng.uniform(-room[0] / 2 + margin, room[0] / 2 - margin), rng.uniform(0.8, 2.0),
                             rng.uniform(-room[2] / 2 + margin, room[2] / 2 - margin)])
        if inside(cand) and clear(cand):
            eye = cand
            break
    if eye is None:
        eye = np.array([0.0, 1.5, 0.0])
    if focus is not None:
        target = focus.center + rng.normal(0, 0.25, 3)
    else:
        target = np.array([rng.uniform(-room[0] / 2, room[0] / 2), rng.uniform(0.3, room[1] - 0.3),
                           rng.uniform(-room[2] / 2, room[2] / 2)])
    if np.linalg.norm((target - eye)[[0, 2]]) < 0.3:  # avoid looking straight down/up (undefined right vector)
        target = target + np.array([0.5, 0.0, 0.5])
    return Camera(eye=eye, target=target)


def _footprint(o: Primitive) -> float:
    if o.shape == "sphere":
        return o.size[0]
    if o.shape == "box":
        return math.hypot(o.size[0], o.size[2])
    if o.shape == "torus":
        return o.size[0] + o.size[1]
    return math.hypot(o.size[0], o.size[1] / 2)


# --- ray casting ---------------------------------------------------------------------------
def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (N, 3) arrays (faster than einsum for 3 columns)."""
    return a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]


def _positive_min(*ts: np.ndarray) -> np.ndarray:
    out = np.full(ts[0].shape, np.inf)
    for t in ts:
        out = np.where((t > EPS) & (t < out), t, out)
    return out


def _quadratic_roots(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Roots of a t^2 + b t + c (NaN where none), smaller first; stable for a near zero."""
    disc = b * b - 4 * a * c
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    q = -0.5 * (b + np.where(b >= 0, sq, -sq))
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(np.abs(a) > 1e-12, q / a, np.nan)
        t2 = np.where(np.abs(q) > 1e-12, c / q, np.nan)
    lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def intersect(shape: str, size: tuple[float, ...], o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Nearest t > 0 where rays o + t d (local frame, d unit) hit the solid; inf where they miss."""
    x, y, z = o[:, 0], o[:, 1], o[:, 2]
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    inf = np.full(len(o), np.inf)
    if shape == "sphere":
        t1, t2 = _quadratic_roots(np.ones_like(x), 2 * _dot(o, d), _dot(o, o) - size[0] ** 2)
        return _positive_min(np.nan_to_num(t1, nan=-1.0), np.nan_to_num(t2, nan=-1.0))
    if shape == "box":
        half = np.array(size)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        ta, tb = (-half - o) * inv, (half - o) * inv
        tmin, tmax = np.minimum(ta, tb).max(axis=1), np.maximum(ta, tb).min(axis=1)
        hit = tmax >= np.maximum(tmin, EPS)
        return np.where(hit, np.where(tmin > EPS, tmin, tmax), inf)
    if shape in ("cylinder", "cone"):
        r, h = size
        if shape == "cylinder":
            a, b, c = dx * dx + dz * dz, 2 * (x * dx + z * dz), x * x + z * z - r * r
            y_ok = lambda t: np.abs(y + t * dy) <= h / 2  # noqa: E731
        else:  # apex at y = h/2, base radius r at y = -h/2: x^2 + z^2 = k^2 (y - h/2)^2
            k2, ya = (r / h) ** 2, y - h / 2
            a, b, c = dx * dx + dz * dz - k2 * dy * dy, 2 * (x * dx + z * dz - k2 * ya * dy), x * x + z * z - k2 * ya * ya
            y_ok = lambda t: (y + t * dy <= h / 2) & (y + t * dy >= -h / 2)  # noqa: E731
        t1, t2 = _quadratic_roots(a, b, c)
        sides = [np.where(np.isfinite(t) & y_ok(np.nan_to_num(t)), t, -1.0) for t in (t1, t2)]
        caps = []
        for cap_y in ((-h / 2, h / 2) if shape == "cylinder" else (-h / 2,)):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = (cap_y - y) / np.where(np.abs(dy) < 1e-12, 1e-12, dy)
            px, pz = x + t * dx, z + t * dz
            caps.append(np.where(px * px + pz * pz <= r * r, t, -1.0))
        return _positive_min(*sides, *caps)
    if shape == "torus":
        return _intersect_torus(size, o, d)
    raise ValueError(f"unknown shape {shape!r}")


def bounding_radius(shape: str, size: tuple[float, ...]) -> float:
    """Radius of a sphere about the local origin that encloses the solid."""
    if shape == "sphere":
        return size[0]
    if shape == "box":
        return float(np.linalg.norm(size))
    if shape == "torus":
        return size[0] + size[1]
    return math.hypot(size[0], size[1] / 2)


def intersect_culled(obj: Primitive, o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """World-space rays against one primitive, testing only rays that reach its bounding sphere."""
    oc = o - obj.center
    b = _dot(oc, d)
    c = _dot(oc, oc) - bounding_radius(obj.shape, obj.size) ** 2
    disc = b * b - c
    idx = np.nonzero((disc >= 0) & (b < np.sqrt(np.maximum(disc, 0.0))))[0]  # far intersection in front
    t = np.full(len(o), np.inf)
    if len(idx):
        t[idx] = intersect(obj.shape, obj.size, oc[idx] @ obj.rotation.T, d[idx] @ obj.rotation.T)
    return t


def _intersect_torus(size: tuple[float, ...], o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Torus in the xz plane: solve the quartic by batched companion-matrix eigenvalues, then polish."""
    big, small = size
    out = np.full(len(o), np.inf)
    # Only rays through the bounding sphere; restart them at its entry point for conditioning.
    b = _dot(o, d)
    c = _dot(o, o) - (big + small) ** 2
    disc = b * b - c
    idx = np.nonzero((disc > 0) & (-b + np.sqrt(np.maximum(disc, 0)) > EPS))[0]
    if len(idx) == 0:
        return out
    t0 = np.maximum(-b[idx] - np.sqrt(disc[idx]), 0.0)
    oo = o[idx] + t0[:, None] * d[idx]
    dd = d[idx]
    p = _dot(oo, dd)
    g = _dot(oo, oo) + big * big - small * small
    r4 = 4 * big * big
    a3 = 4 * p
    a2 = 4 * p * p + 2 * g - r4 * (dd[:, 0] ** 2 + dd[:, 2] ** 2)
    a1 = 4 * p * g - 2 * r4 * (oo[:, 0] * dd[:, 0] + oo[:, 2] * dd[:, 2])
    a0 = g * g - r4 * (oo[:, 0] ** 2 + oo[:, 2] ** 2)
    comp = np.zeros((len(idx), 4, 4))
    comp[:, 0, :] = -np.stack([a3, a2, a1, a0], axis=1)
    comp[:, 1, 0] = comp[:, 2, 1] = comp[:, 3, 2] = 1.0
    roots = np.linalg.eigvals(comp)
    real = np.where(np.abs(roots.imag) < 1e-3 * (big + small), roots.real, np.inf)
    real = np.where(real > -EPS, real, np.inf)
    t = real.min(axis=1)
    hit = np.isfinite(t)
    for _ in range(3):  # Newton polish of the chosen root
        tt = np.where(hit, t, 0.0)
        f = (((tt + a3) * tt + a2) * tt + a1) * tt + a0
        df = ((4 * tt + 3 * a3) * tt + 2 * a2) * tt + a1
        step = np.where(np.abs(df) > 1e-12, f / np.where(np.abs(df) > 1e-12, df, 1.0), 0.0)
        t = np.where(hit & (np.abs(step) < 0.05 * small), t - step, t)
    q = oo + np.where(hit, t, 0.0)[:, None] * dd
    sdf = np.hypot(np.hypot(q[:, 0], q[:, 2]) - big, q[:, 1]) - small
    hit &= np.abs(sdf) < 1e-3 * small + 1e-6
    out[idx[hit]] = t0[hit] + t[hit]
    out[out <= EPS] = np.inf
    return out


def surface_geometry(shape: str, size: tuple[float, ...], p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local-frame unit outward normal and principal curvatures (k1, k2; 1/m, convex positive) at surface points p."""
    n_pts = len(p)
    k1, k2 = np.zeros(n_pts), np.zeros(n_pts)
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    rho = np.maximum(np.hypot(x, z), 1e-9)
    if shape == "sphere":
        n = p / size[0]
        k1[:] = k2[:] = 1.0 / size[0]
    elif shape == "box":
        rel = np.abs(p) / np.array(size)
        axis = rel.argmax(axis=1)
        n = np.zeros_like(p)
        n[np.arange(n_pts), axis] = np.sign(p[np.arange(n_pts), axis])
    elif shape == "cylinder":
        r, h = size
        cap = np.abs(np.abs(y) - h / 2) < np.abs(rho - r)
        n = np.where(cap[:, None], np.stack([0 * x, np.sign(y), 0 * x], 1), np.stack([x / rho, 0 * x, z / rho], 1))
        k1 = np.where(cap, 0.0, 1.0 / r)
    elif shape == "cone":
        r, h = size
        k = r / h
        side_dist = np.abs(rho - k * (h / 2 - y)) / math.sqrt(1 + k * k)
        cap = np.abs(y + h / 2) < side_dist
        side = np.stack([x / rho, np.full_like(x, k), z / rho], 1) / math.sqrt(1 + k * k)
        n = np.where(cap[:, None], np.stack([0 * x, -np.ones_like(x), 0 * x], 1), side)
        # Surface of revolution: circumferential curvature = (radial component of n) / (distance to axis).
        k1 = np.where(cap, 0.0, 1.0 / (np.maximum(rho, 1e-3) * math.sqrt(1 + k * k)))
    elif shape == "torus":
        big, small = size
        ring = np.stack([big * x / rho, 0 * x, big * z / rho], 1)
        n = p - ring
        n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        cos_theta = _dot(n, np.stack([x / rho, 0 * x, z / rho], 1))
        k1[:] = 1.0 / small
        k2 = cos_theta / rho
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return n, np.maximum(k1, k2), np.minimum(k1, k2)


def _pattern(m: Material, q: np.ndarray) -> np.ndarray:
    """Blend weight in [0, 1] of the material's second colour at texture coordinates q (metres)."""
    if m.pattern == "plain":
        return np.zeros(len(q))
    if m.pattern == "stripes":
        return (np.sin(2 * np.pi * (m.freq * (q @ m.axis) + m.offset[0])) > 0).astype(np.float64)
    if m.pattern == "checks":
        return (np.floor(m.freq * q + m.offset).sum(axis=1) % 2).astype(np.float64)
    s = np.sin(q @ m.waves[:, :3].T + m.waves[:, 3]).mean(axis=1)
    return np.clip(0.5 + 1.2 * s, 0.0, 1.0)


def _albedo(m: Material, q: np.ndarray) -> np.ndarray:
    w = _pattern(m, q)[:, None]
    return m.colors[0] * (1 - w) + m.colors[1] * w


def _camera_rays(cameras: list[Camera], resolution: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World origins, unit directions and camera bases (V, 3, 3 rows right/up/forward) for all pixels."""
    f, cx, cy = intrinsics(resolution)
    jj, ii = np.meshgrid(np.arange(resolution) + 0.5, np.arange(resolution) + 0.5)
    d_cam = np.stack([(jj - cx) / f, -(ii - cy) / f, -np.ones_like(jj)], axis=-1).reshape(-1, 3)  # camera frame
    bases = np.stack([np.stack(c.basis()) for c in cameras])  # (V, 3, 3): right, up, forward
    # camera frame -> world: x * right + y * up + (-z) * forward
    to_world = np.stack([bases[:, 0], bases[:, 1], -bases[:, 2]], axis=1)  # (V, 3 cam axes, 3 world)
    d = np.einsum("pc,vcw->vpw", d_cam, to_world).reshape(-1, 3)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.repeat(np.stack([c.eye for c in cameras]), resolution * resolution, axis=0)
    return o, d, bases


def render(layout: Layout, cameras: list[Camera], resolution: int) -> Render:
    """Ray cast all views of one layout at once and return the raw per-pixel quantities."""
    n_views, hw = len(cameras), resolution * resolution
    o, d, bases = _camera_rays(cameras, resolution)
    n_rays = len(o)

    # Room: the camera is inside an axis-aligned box; the ray leaves it through the nearest face.
    lo = np.array([-layout.room[0] / 2, 0.0, -layout.room[2] / 2])
    hi = np.array([layout.room[0] / 2, layout.room[1], layout.room[2] / 2])
    with np.errstate(divide="ignore"):
        t_axes = np.where(d > 0, (hi - o) / np.where(d == 0, 1e-12, d), (lo - o) / np.where(d == 0, -1e-12, d))
    axis = t_axes.argmin(axis=1)
    best_t = t_axes[np.arange(n_rays), axis]
    positive = d[np.arange(n_rays), axis] > 0
    # face index: floor 0, ceiling 1, walls -x 2, +x 3, -z 4, +z 5
    face = np.select([axis == 1, axis == 0, axis == 2], [np.where(positive, 1, 0), np.where(positive, 3, 2),
                                                        np.where(positive, 5, 4)])
    best_id = face.copy()  # 0..5 room faces, 6 + k object k

    for k, obj in enumerate(layout.objects):
        t = intersect_culled(obj, o, d)
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        best_id = np.where(closer, 6 + k, best_id)

    points = o + best_t[:, None] * d
    normal = np.zeros((n_rays, 3))
    k_max, k_min = np.zeros(n_rays), np.zeros(n_rays)
    albedo = np.zeros((n_rays, 3))
    class_id = np.zeros(n_rays, np.int64)
    face_normals = np.array([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]], float)
    for f_idx in range(6):
        sel = best_id == f_idx
        normal[sel] = face_normals[f_idx]
        albedo[sel] = _albedo(layout.room_materials[f_idx], points[sel])
        class_id[sel] = SEGMENT_CLASSES.index(ROOM_FACES[f_idx])
    for k, obj in enumerate(layout.objects):
        sel = best_id == 6 + k
        if not sel.any():
            continue
        pl = (points[sel] - obj.center) @ obj.rotation.T
        n_local, k1, k2 = surface_geometry(obj.shape, obj.size, pl)
        normal[sel] = n_local @ obj.rotation  # local -> world (rotation is orthonormal)
        k_max[sel], k_min[sel] = k1, k2
        albedo[sel] = _albedo(obj.material, pl)
        class_id[sel] = SEGMENT_CLASSES.index(obj.shape)

    # Shading: ambient + Lambertian point light with hard shadows cast by the objects.
    to_light = layout.light - points
    dist = np.linalg.norm(to_light, axis=1)
    ldir = to_light / dist[:, None]
    lit = np.ones(n_rays, bool)
    so = points + 1e-4 * normal
    for obj in layout.objects:
        lit &= ~(intersect_culled(obj, so, ldir) < dist - 1e-4)
    diffuse = np.maximum(0.0, _dot(normal, ldir)) * layout.light_power / (1 + (dist / 3.0) ** 2)
    image = np.clip(albedo * (layout.ambient + diffuse * lit)[:, None], 0.0, 1.0)

    # Camera-frame normals and z-buffer depth, per view.
    vidx = np.repeat(np.arange(n_views), hw)
    right, up, fwd = bases[vidx, 0], bases[vidx, 1], bases[vidx, 2]
    normal_cam = np.stack([_dot(normal, right), _dot(normal, up),
                           -_dot(normal, fwd)], axis=1)
    z = best_t * _dot(d, fwd)
    surface = np.where(best_id >= 6, best_id - 5, 0)

    shape = (n_views, resolution, resolution)
    return Render(image=image.reshape(*shape, 3).astype(np.float32), z=z.reshape(shape),
                  normal=normal_cam.reshape(*shape, 3), curvature=np.stack([k_max, k_min], 1).reshape(*shape, 2),
                  class_id=class_id.reshape(shape), surface=surface.reshape(shape), cameras=list(cameras))


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


def layout_seed(seed: int, split_index: int, layout_index: int) -> np.random.Generator:
    """The generator of one layout: disjoint streams per (seed, split, layout)."""
    return np.random.default_rng([seed, split_index, layout_index])


def render_split_layout(seed: int, split_index: int, layout_index: int, n_views: int, resolution: int):
    """Render `n_views` views of one layout of a split; returns encode_targets' tuple and the layout."""
    rng = layout_seed(seed, split_index, layout_index)
    layout = random_layout(rng)
    cameras = [random_camera(rng, layout) for _ in range(n_views)]
    return encode_targets(render(layout, cameras, resolution)), layout


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


def build_split(config, split: str, directory, progress: Callable[[int], None] | None = None) -> dict:
    """Render one split into `directory` (pre-allocated .npy memmaps); returns the manifest fields.

    Views are grouped `config.views_per_layout` to a layout; layouts of different splits come
    from different seed streams, so no layout is shared between splits.
    """
    from pathlib import Path

    from numpy.lib.format import open_memmap

    from taskgroup.data.config import SPLITS
    from taskgroup.tasks import TASKS

    directory = Path(directory)
    n, res, per = config.split_size(split), config.resolution, config.views_per_layout
    split_index = SPLITS.index(split)
    images = open_memmap(directory / "images.npy", "w+", np.float32, (n, 3, res, res))
    arrays = {"segment_semantic": open_memmap(directory / "segment_semantic.npy", "w+", np.int64, (n, res, res))}
    for task in TARGET_TASKS:
        if task not in ("segment_semantic", "rgb"):
            arrays[task] = open_memmap(directory / f"{task}.npy", "w+", np.float32, (n, TASKS[task].channels, res, res))
    mask = open_memmap(directory / "mask_valid.npy", "w+", np.bool_, (n, 1, res, res))
    jobs = [(config.seed, split_index, k, start, min(per, n - start), res) for k, start in enumerate(range(0, n, per))]
    layouts = []
    for start, count, (imgs, targets, valid), summary in _render_jobs(jobs):
        images[start:start + count] = imgs
        for task, arr in arrays.items():
            arr[start:start + count] = targets[task]
        mask[start:start + count] = valid
        layouts.append(summary)
        if progress is not None:
            progress(count)
    for arr in (images, mask, *arrays.values()):
        arr.flush()
    del images, mask, arrays
    tasks = {task: {"target": "images.npy" if task == "rgb" else f"{task}.npy", "mask": "mask_valid.npy"}
             for task in TARGET_TASKS}
    f, cx, cy = intrinsics(res)
    return {"count": n, "tasks": tasks, "segment_classes": list(SEGMENT_CLASSES),
            "meta": {"camera": {"fov_deg": FOV_DEG, "fx": f, "fy": f, "cx": cx, "cy": cy,
                                "frame": "x right, y up, z towards the camera; pixel centres at +0.5"},
                     "layouts": layouts}}


PARALLEL_MIN_LAYOUTS = 16  # below this, starting worker processes costs more than it saves


def _render_job(job: tuple[int, int, int, int, int, int]):
    seed, split_index, layout_index, start, count, res = job
    encoded, layout = render_split_layout(seed, split_index, layout_index, count, res)
    summary = {"first_view": start, "views": count, "room": [round(float(v), 6) for v in layout.room],
               "objects": [o.shape for o in layout.objects]}
    return start, count, encoded, summary


def _main_is_spawn_safe() -> bool:
    """Whether spawned workers may import the main script: it has no file (interactive, -c), or
    its source guards its work with `if __name__ == "__main__":`. An unguarded script would be
    run again by every worker, so it gets serial rendering instead."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith("__main__"):  # `python -m package`: workers never re-run it
        return True
    path = getattr(main, "__file__", None)
    if not path:
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "__main__" in f.read()
    except OSError:
        return False


def _render_jobs(jobs: list):
    """Render layouts in order, on one worker process per usable core when there are many (results are
    identical; a 128-pixel view costs about 16 times a 32-pixel one, so large presets need every core)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    workers = min(cores, len(jobs))
    if workers < 2 or len(jobs) < PARALLEL_MIN_LAYOUTS or not _main_is_spawn_safe():
        yield from map(_render_job, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: the caller may have started torch/OpenMP threads, which fork does not survive.
    # A spawned worker re-imports the caller's main module; a script without an
    # `if __name__ == "__main__":` guard makes it fail, and then the rest renders in this process.
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_render_job, jobs, chunksize=4):
                yield result
                done += 1
    except BrokenProcessPool:
        yield from map(_render_job, jobs[done:])
