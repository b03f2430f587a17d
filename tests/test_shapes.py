"""The shapes of notebook 04 (also drawn in the captioning scenes of notebook 07)."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from course_utils.vision import shapes


def test_shape_classification_set():
    x, y, names = shapes.shape_classification_set(3, image_size=32, seed=1)
    assert x.shape == (18, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [3] * 6
    assert names == shapes.SHAPES
    x2, _, _ = shapes.shape_classification_set(3, image_size=32, seed=1)
    assert np.array_equal(x, x2)
    assert x.std() > 10  # textured, not blank
    with pytest.raises(ValueError, match="n_per_class"):
        shapes.shape_classification_set(0)


@pytest.mark.parametrize("shape", shapes.SHAPES)
def test_each_shape_fills_its_box_only(shape):
    img = Image.new("RGB", (40, 40))
    shapes.draw_shape(ImageDraw.Draw(img), shape, [10, 10, 30, 30], (200, 50, 50))
    lit = np.asarray(img).sum(axis=2) > 0  # (40, 40): pixels the shape touched
    rows, cols = np.nonzero(lit)
    assert rows.min() >= 9 and rows.max() <= 31 and cols.min() >= 9 and cols.max() <= 31
    assert lit.sum() > 60  # a filled shape, not an outline only


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape 'hexagon'"):
        shapes.polygon("hexagon", [0, 0, 10, 10])
