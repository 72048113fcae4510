"""The renderer's targets agree with each other and with the analytic geometry."""

import math

import numpy as np
import pytest

from taskgroup.data import scenes
from taskgroup.tasks import SEGMENT_CLASSES

RES = 64


def plain(color=(0.6, 0.5, 0.4)) -> scenes.Material:
    return scenes.Material(colors=np.array([color, color]), pattern="plain", freq=1.0, axis=np.array([1.0, 0, 0]),
                           offset=np.zeros(3), waves=np.zeros((3, 4)))


def room_layout(objects) -> scenes.Layout:
    return scenes.Layout(room=np.array([6.0, 3.0, 6.0]), room_materials=[plain() for _ in range(6)], objects=objects,
                         light=np.array([0.0, 2.7, 0.0]), light_power=1.2, ambient=0.3)


def single(shape, size, center, rotation=None):
    return room_layout([scenes.Primitive(shape, np.array(center, float), np.eye(3) if rotation is None else rotation,
                                         size, plain((0.2, 0.7, 0.3)))])


def look(eye, target):
    return scenes.Camera(eye=np.array(eye, float), target=np.array(target, float))


def camera_rays(cam, res=RES):
    f, cx, cy = scenes.intrinsics(res)
    right, up, fwd = cam.basis()
    jj, ii = np.meshgrid(np.arange(res) + 0.5, np.arange(res) + 0.5)
    d = ((jj - cx) / f)[..., None] * right + (-(ii - cy) / f)[..., None] * up + fwd
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def random_views():
    rng = scenes.layout_seed(123, 0, 0)
    layout = scenes.random_layout(rng)
    cams = [scenes.random_camera(rng, layout) for _ in range(6)]
    r = scenes.render(layout, cams, RES)
    return r, scenes.encode_targets(r)


def test_normals_agree_with_finite_differences_of_depth(random_views):
    r, (_, targets, _) = random_views
    z = scenes.decode_depth(targets["depth_zbuffer"][:, 0])  # decode the stored target, not the raw depth
    f, cx, cy = scenes.intrinsics(RES)
    jj, ii = np.meshgrid(np.arange(RES) + 0.5, np.arange(RES) + 0.5)
    pts = np.stack([(jj - cx) / f * z, -(ii - cy) / f * z, -z], axis=-1)  # camera frame: x right, y up, z back
    du, dv = pts[:, :-1, 1:] - pts[:, :-1, :-1], pts[:, :-1, :-1] - pts[:, 1:, :-1]  # +x and +y (up) steps
    n_fd = np.cross(du, dv)
    n_fd /= np.linalg.norm(n_fd, axis=-1, keepdims=True)
    n_t = np.moveaxis(targets["normal"], 1, -1)[:, :-1, :-1] * 2 - 1
    n_t /= np.linalg.norm(n_t, axis=-1, keepdims=True)
    # Away from edges: the pixel and its right and lower neighbours lie on one smooth surface.
    s, c = r.surface, r.class_id
    same = (s[:, :-1, :-1] == s[:, :-1, 1:]) & (s[:, :-1, :-1] == s[:, 1:, :-1])
    same &= (c[:, :-1, :-1] == c[:, :-1, 1:]) & (c[:, :-1, :-1] == c[:, 1:, :-1])
    nr = r.normal
    same &= (np.einsum("vijc,vijc->vij", nr[:, :-1, :-1], nr[:, :-1, 1:]) > 0.99)
    same &= (np.einsum("vijc,vijc->vij", nr[:, :-1, :-1], nr[:, 1:, :-1]) > 0.99)
    assert same.mean() > 0.7
    angle = np.degrees(np.arccos(np.clip(np.einsum("vijc,vijc->vij", n_fd, n_t)[same], -1, 1)))
    assert np.median(angle) < 1.0
    assert np.percentile(angle, 95) < 5.0
    # Every visible surface faces the camera: normal . viewing ray < 0.
    rays = np.stack([(jj - cx) / f, -(ii - cy) / f, -np.ones_like(jj)], axis=-1)[:-1, :-1]
    assert (np.einsum("vijc,ijc->vij", n_t, rays) < 1e-6).all()


def test_occlusion_edges_coincide_with_depth_jumps(random_views):
    r, _ = random_views
    edge = scenes.occlusion_edges(r.z, r.surface)  # the binary edges the soft target is made from
    z = r.z
    jump = np.zeros(z.shape)
    for axis in (1, 2):
        j = np.abs(np.diff(z, axis=axis)) / np.minimum(np.delete(z, -1, axis), np.delete(z, 0, axis))
        pad_lo = [(0, 0)] * 3
        pad_hi = [(0, 0)] * 3
        pad_lo[axis], pad_hi[axis] = (1, 0), (0, 1)
        jump = np.maximum(jump, np.maximum(np.pad(j, pad_lo), np.pad(j, pad_hi)))
    assert edge.any()
    assert (jump[edge] > scenes.OCCLUSION_JUMP).all()  # every edge pixel sits on a depth jump
    assert edge[jump > scenes.SELF_OCCLUSION_JUMP].all()  # every large jump is an edge
    assert not edge[jump < 1e-3].any()


def test_occlusion_edge_strength_peaks_on_depth_jumps(random_views):
    from scipy.ndimage import binary_dilation, distance_transform_edt

    r, (_, targets, _) = random_views
    edge = scenes.occlusion_edges(r.z, r.surface)
    strength = targets["edge_occlusion"][:, 0]
    np.testing.assert_array_equal(strength, np.stack([scenes.edge_strength(e) for e in edge]))
    assert 0.05 < ((strength > 0) & (strength < 1)).mean()  # soft: many values strictly between 0 and 1
    dist = np.stack([distance_transform_edt(~e) for e in edge])  # pixels to the nearest edge pixel
    on, near, far = strength[dist == 0], strength[(dist >= 2) & (dist < 4)], strength[dist >= 4]
    assert on.mean() > 0.8 and on.min() > 0.3  # strong on every depth jump
    assert on.mean() > near.mean() + 0.2 and near.mean() > far.mean() + 0.2  # and decaying away from it
    square = np.ones((1, 2 * scenes.EDGE_BLUR_RADIUS_PX + 1, 2 * scenes.EDGE_BLUR_RADIUS_PX + 1), bool)
    assert (strength[~binary_dilation(edge, square)] == 0).all()  # exactly 0 beyond the blur radius


def test_edge_strength_of_a_straight_line_is_a_gaussian_profile():
    line = np.zeros((32, 32), bool)
    line[:, 12] = True
    s = scenes.edge_strength(line)
    assert s.dtype == np.float32 and s.shape == (32, 32)
    d = np.arange(32) - 12
    expected = np.where(np.abs(d) <= scenes.EDGE_BLUR_RADIUS_PX, np.exp(-d**2 / (2 * scenes.EDGE_BLUR_SIGMA_PX**2)), 0)
    for row in (0, 16, 31):  # the same profile everywhere along the line, including at the borders
        np.testing.assert_allclose(s[row], expected, atol=1e-6)
    assert (scenes.edge_strength(np.zeros((16, 16), bool)) == 0).all()
    dense = np.zeros((16, 16), bool)
    dense[:, ::2] = True  # lines closer than the blur: saturated, clipped to 1
    np.testing.assert_allclose(scenes.edge_strength(dense)[:, 3:13], 1.0)


def test_texture_edge_strength_is_soft_canny(random_views):
    r, (_, targets, _) = random_views
    for i, image in enumerate(r.image):
        np.testing.assert_array_equal(targets["edge_texture"][i, 0], scenes.edge_strength(scenes.canny_edges(image)))


def test_segmentation_of_a_single_known_sphere():
    center, radius = np.array([0.3, 0.5, -1.0]), 0.5
    cam = look([0.0, 1.2, 2.0], center)
    r = scenes.render(single("sphere", (radius,), center), [cam], RES)
    d = camera_rays(cam)
    # Independent hit test: distance from the centre to each ray's line is below the radius.
    oc = center - cam.eye
    along = d @ oc
    dist = np.linalg.norm(oc - along[..., None] * d, axis=-1)
    expected = (dist < radius) & (along > 0)
    got = r.class_id[0] == SEGMENT_CLASSES.index("sphere")
    assert expected.sum() > 200
    assert (got == expected).all()
    # The rest is room surfaces.
    assert set(np.unique(r.class_id[0][~got])) <= {SEGMENT_CLASSES.index(c) for c in ("floor", "wall", "ceiling")}


@pytest.mark.parametrize("shape,size", [("box", (0.4, 0.3, 0.2)), ("cylinder", (0.3, 0.8)), ("cone", (0.4, 0.9)),
                                        ("torus", (0.4, 0.12))])
def test_each_shape_renders_with_its_class(shape, size):
    center = np.array([0.0, 0.6, -1.0])
    r = scenes.render(single(shape, size, center, scenes._rotation_x(0.4)), [look([0.0, 1.3, 1.5], center)], RES)
    classes = set(np.unique(r.class_id))
    assert SEGMENT_CLASSES.index(shape) in classes
    assert classes - {SEGMENT_CLASSES.index(shape)} <= {0, 1, 2}
    assert (r.class_id == SEGMENT_CLASSES.index(shape)).sum() > 100


def test_depth_of_a_wall_seen_head_on():
    cam = look([0.0, 1.5, 0.0], [3.0, 1.5, 0.0])  # the +x wall is 3 m away, perpendicular to the view axis
    r = scenes.render(room_layout([]), [cam], RES)
    _, targets, mask = scenes.encode_targets(r)
    wall = r.class_id[0] == SEGMENT_CLASSES.index("wall")
    centre = np.zeros_like(wall)
    centre[16:48, 16:48] = True
    assert wall[centre].all()
    np.testing.assert_allclose(scenes.decode_depth(targets["depth_zbuffer"][0, 0][centre]), 3.0, rtol=1e-5)
    # Its normal points at the camera: (0, 0, 1) in the camera frame -> (0.5, 0.5, 1) encoded.
    np.testing.assert_allclose(targets["normal"][0][:, centre].T, [[0.5, 0.5, 1.0]] * int(centre.sum()), atol=1e-5)
    assert mask.all()


def test_reshading_is_lambertian_shading_of_the_normal_target(random_views):
    _, (_, targets, _) = random_views
    n = targets["normal"] * 2 - 1
    expected = np.maximum(0.0, np.einsum("vchw,c->vhw", n, scenes.RESHADING_LIGHT_CAM))
    np.testing.assert_allclose(targets["reshading"][:, 0], expected, atol=1e-5)
    assert math.isclose(np.linalg.norm(scenes.RESHADING_LIGHT_CAM), 1.0, rel_tol=1e-9)


def test_curvature_of_sphere_cylinder_and_planes():
    radius = 0.45
    center = np.array([0.0, 0.45, -1.0])
    layout = room_layout([
        scenes.Primitive("sphere", center, np.eye(3), (radius,), plain()),
        scenes.Primitive("cylinder", np.array([1.2, 0.5, -1.0]), np.eye(3), (0.25, 1.0), plain()),
    ])
    r = scenes.render(layout, [look([0.4, 1.4, 2.0], [0.6, 0.5, -1.0])], RES)
    _, targets, _ = scenes.encode_targets(r)
    k = scenes.decode_curvature(targets["principal_curvature"][0])  # (2, H, W)
    sphere = r.class_id[0] == SEGMENT_CLASSES.index("sphere")
    assert sphere.sum() > 50
    np.testing.assert_allclose(k[:, sphere], 1 / radius, rtol=1e-3)
    cyl = r.class_id[0] == SEGMENT_CLASSES.index("cylinder")
    n_cam = r.normal[0]
    side = cyl & (np.abs(n_cam[..., 1]) < 0.5)  # not the top cap
    assert side.sum() > 20
    np.testing.assert_allclose(k[0, side], 1 / 0.25, rtol=1e-3)
    np.testing.assert_allclose(k[1, side], 0.0, atol=1e-3)
    room = r.surface[0] == 0
    np.testing.assert_allclose(targets["principal_curvature"][0][:, room], 0.5)


def test_torus_curvature_and_geometry():
    big, small = 0.4, 0.12
    p = np.array([[big + small, 0, 0], [big - small, 0, 0], [big, small, 0]])  # outer rim, inner rim, top
    n, k1, k2 = scenes.surface_geometry("torus", (big, small), p)
    np.testing.assert_allclose(n, [[1, 0, 0], [-1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(k1, [1 / small, 1 / small, 1 / small])
    np.testing.assert_allclose(k2, [1 / (big + small), -1 / (big - small), 0.0], atol=1e-12)
    # A ray along -x from outside hits the outer rim first.
    t = scenes.intersect("torus", (big, small), np.array([[2.0, 0.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(t, [2.0 - big - small], atol=1e-7)
    # A ray straight down through the hole misses.
    t = scenes.intersect("torus", (big, small), np.array([[0.0, 2.0, 0.0]]), np.array([[0.0, -1.0, 0.0]]))
    assert np.isinf(t).all()


def test_colour_does_not_give_away_the_class():
    """Across many layouts, the mean colour of each object class is about the same."""
    means = {shape: [] for shape in scenes.SHAPES}
    for i in range(60):
        layout = scenes.random_layout(scenes.layout_seed(7, 0, i))
        for o in layout.objects:
            means[o.shape].append(o.material.colors[0])
    overall = np.concatenate([np.array(v) for v in means.values()]).mean(axis=0)
    for shape, colours in means.items():
        assert len(colours) > 20
        assert np.abs(np.mean(colours, axis=0) - overall).max() < 0.1


def test_targets_are_in_range(random_views):
    _, (images, targets, mask) = random_views
    assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 1
    for task, t in targets.items():
        if task == "segment_semantic":
            assert t.dtype == np.int64 and t.min() >= 0 and t.max() < len(SEGMENT_CLASSES)
        else:
            assert t.dtype == np.float32 and t.min() >= 0 and t.max() <= 1, task
    assert mask.dtype == bool
    # Texture edges and keypoints vary (textures are present); they are not all zero or all one.
    for task in ("edge_texture", "keypoints2d", "edge_occlusion"):
        assert 0.01 < targets[task].mean() < 0.5, task
