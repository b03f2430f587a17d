"""plot_attention: one panel per word over the image, shapes checked."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from course_utils.plotting import plot_attention


def test_one_panel_per_word_plus_the_image():
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    alphas = torch.softmax(torch.randn(3, 16), dim=1)
    fig = plot_attention(image, ["a", "red", "circle"], alphas, grid=4, ncols=2)
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titled == ["image", "a", "red", "circle"]
    heat = fig.axes[2].images[1].get_array()  # the overlay of "red": the 4 x 4 grid stretched over the image
    assert heat.shape == (4, 4)
    np.testing.assert_allclose(np.asarray(heat).ravel(), alphas[1].numpy(), rtol=1e-6)
    assert fig.axes[2].images[1].get_extent() == [0, 64, 48, 0]


def test_wrong_alphas_shape():
    with pytest.raises(ValueError, match=r"expected \(2, 16\)"):
        plot_attention(np.zeros((8, 8, 3)), ["a", "b"], np.ones((2, 9)), grid=4)
