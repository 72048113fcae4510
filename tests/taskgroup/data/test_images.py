"""The file loaders' image reader: values as stored, RGB order, alpha dropped, other files refused."""

import cv2
import numpy as np
import pytest

from taskgroup.data.images import read_image
from taskgroup.errors import TaskgroupError


def test_values_are_kept_as_stored_in_rgb_order(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0], rgb[..., 2] = 1000, 60000
    cv2.imwrite(str(tmp_path / "c.png"), np.ascontiguousarray(rgb[:, :, ::-1]))  # OpenCV writes BGR
    out = read_image(tmp_path / "c.png", "folder data")
    assert out.dtype == np.uint16 and out.shape == (4, 5, 3) and np.array_equal(out, rgb)

    bgra = np.zeros((3, 3, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 9, 200, 128  # blue 9, red 200, alpha 128
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    assert read_image(tmp_path / "a.png", "x").tolist() == [[[200, 0, 9]] * 3] * 3  # RGB, alpha dropped


def test_unreadable_and_float_files_are_refused_naming_the_loader_and_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(TaskgroupError, match=r"^taskonomy: cannot read .*bad\.png as an image"):
        read_image(tmp_path / "bad.png", "taskonomy")
    cv2.imwrite(str(tmp_path / "f.tiff"), np.ones((2, 2), np.float32))
    with pytest.raises(TaskgroupError, match=r"folder data: .*f\.tiff: expected an 8- or 16-bit image, found float32"):
        read_image(tmp_path / "f.tiff", "folder data")
