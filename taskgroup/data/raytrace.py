"""Ray casting the built-in scenes in numpy: every view of a layout as one batch of rays.

Analytic ray-primitive intersections, the hit surface's geometry (normal, principal curvatures),
procedural textures and point-light shading with hard shadows; `render` returns the raw
per-pixel quantities (Render) from which taskgroup.data.scene_targets computes every target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from taskgroup.data.scene_layout import EPS, ROOM_FACES, Camera, Layout, Material, Primitive, intrinsics
from taskgroup.tasks import SEGMENT_CLASSES

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
