"""The plotting helpers added for notebooks 01-03: matrices with values, histogram grids, decision regions."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils.plotting import plot_decision_boundary, show_histograms, show_matrix


def test_show_matrix_writes_every_value():
    m = np.array([[4, 3, 4], [2, 4, 3], [2, 3, 4]])
    fig = show_matrix(m, title="result")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == [str(v) for v in m.ravel()]
    assert fig.axes[0].get_title() == "result"
    plt.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        show_matrix(np.zeros((2, 2, 2, 2)))


def test_show_matrix_draws_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    assert show_matrix(torch.eye(2), ax=axes[1], fmt="{:.1f}") is fig
    assert [t.get_text() for t in axes[1].texts] == ["1.0", "0.0", "0.0", "1.0"]
    plt.close(fig)


def test_show_histograms_one_column_per_image():
    images = [np.full((8, 8), v, np.uint8) for v in (10, 128, 250)]
    fig = show_histograms(images, titles=["dark", "mid", "bright"])
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "dark"
    steps = fig.axes[3].patches[0]  # histogram below the first image
    assert steps.get_data().values.sum() == 64 and steps.get_data().values[10] == 64
    plt.close(fig)
    fig = show_histograms([np.zeros((4, 4, 3), np.uint8)])
    assert len(fig.axes[1].patches) == 3  # one curve per channel
    plt.close(fig)


def test_plot_decision_boundary_with_numpy_and_torch_predictors():
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], float)
    y = np.array([0, 1, 1, 1])
    fig = plot_decision_boundary(lambda g: (g.sum(1) > 0.5).astype(int), x, y, title="OR")
    assert fig.axes[0].get_title() == "OR"
    plt.close(fig)
    model = torch.nn.Linear(2, 2)
    fig = plot_decision_boundary(lambda g: model(torch.tensor(g, dtype=torch.float32)).argmax(1), x, y)
    plt.close(fig)
    fig = plot_decision_boundary(lambda g: np.zeros(len(g), int), x, y)  # one class everywhere
    plt.close(fig)
