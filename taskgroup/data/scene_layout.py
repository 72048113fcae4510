"""The built-in scenes' world: rooms of primitive shapes with random materials, and cameras.

The shape registry (SHAPES, the room's faces, the texture patterns), the scene description
(Material, Primitive, Layout, Camera) and the random generator of layouts and cameras. What a
layout looks like is decided here; how it is rendered is taskgroup.data.raytrace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FOV_DEG = 60.0  # horizontal (= vertical) field of view of every camera
AMBIENT_RANGE = (0.15, 0.35)
LIGHT_RANGE = (1.0, 1.6)

SHAPES = ("sphere", "box", "cylinder", "cone", "torus")
ROOM_FACES = ("floor", "ceiling", "wall", "wall", "wall", "wall")  # face index -> class name
PATTERNS = ("plain", "stripes", "checks", "noise")
EPS = 1e-6


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
