"""plot_attention_flow: the diagram of one attention step draws the grid, the scores and the weights."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from course_utils.captioning.attention_flow import plot_attention_flow


def test_three_grid_panels_with_the_given_numbers():
    scores = torch.randn(49)
    fig = plot_attention_flow(scores, torch.softmax(scores, dim=0), np.zeros((32, 32, 3), dtype=np.uint8))
    assert len(fig.axes) == 3
    shown = fig.axes[1].images[0].get_array()  # the scores, as a 7 x 7 grid, row-major
    np.testing.assert_allclose(np.asarray(shown), scores.numpy().reshape(7, 7), rtol=1e-6)
    peak = int(torch.softmax(scores, dim=0).argmax())
    labels = [t for t in fig.axes[2].texts if t.get_text()]
    assert labels and labels[0].get_position() == (peak % 7 + 0.5, peak // 7 + 0.5)


def test_without_an_image_and_on_another_grid():
    alphas = torch.softmax(torch.randn(16), dim=0)
    fig = plot_attention_flow(alphas.log(), alphas, grid=4, encoder_dim=1280)
    assert "16 regions" in fig.axes[0].get_title() and "1,280" in fig.axes[0].get_title()
