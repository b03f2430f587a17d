"""A diagram of one attention step over the grid of regions, drawn from real numbers (notebook 09).

Left to right: the image cut into ``grid x grid`` regions (one vector ``f_i`` each), the
scores ``e_ti`` the attention gives them, the weights ``alpha_t = softmax(e_t)``, and what
the decoder does with the weighted average of the regions (the context): gate, ``LSTMCell``,
next word. The decoder's previous state ``h_{t-1}`` enters at the scores, the only place
where it meets the regions.
"""

from __future__ import annotations

from typing import Any, Optional

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch

from course_utils.plotting import to_numpy_image

_DECODER = [  # the right-hand column: what happens to the context
    r"context $z_t=\sum_i \alpha_{ti} f_i$",
    r"gate $\beta_t \odot z_t$",
    r"LSTMCell($[E\,w_{t-1};\ \beta_t z_t]$, $(h_{t-1}, c_{t-1})$)",
    r"$h_t$ $\to$ fc $\to$ scores of word $t$",
]


def _grid_panel(ax: plt.Axes, values: Optional[np.ndarray], image: Optional[np.ndarray], grid: int,
                title: str, cmap: str) -> None:
    """An image (or a heat map of ``values (grid, grid)``) with the region boundaries drawn."""
    if image is not None:
        ax.imshow(image, extent=(0, grid, grid, 0))
    else:
        ax.imshow(values, cmap=cmap, extent=(0, grid, grid, 0))
    for k in range(grid + 1):
        ax.axhline(k, color="white", lw=0.6)
        ax.axvline(k, color="white", lw=0.6)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _arrow(fig: plt.Figure, start: tuple[float, float], end: tuple[float, float], label: str = "") -> None:
    """An arrow in figure coordinates, with a label above its middle."""
    fig.add_artist(FancyArrowPatch(start, end, transform=fig.transFigure, arrowstyle="-|>", mutation_scale=14))
    if label:
        fig.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.04, label, ha="center", fontsize=8)


def plot_attention_flow(
    scores: Any, alphas: Any, image: Any = None, grid: int = 7, encoder_dim: int = 2048
) -> plt.Figure:
    """Draw one attention step: ``scores`` and ``alphas`` ``(grid * grid,)`` are ``e_t`` and
    ``alpha_t`` for one image (region ``r`` is row ``r // grid``, column ``r % grid``);
    ``image`` (any format ``plotting.to_numpy_image`` reads) is drawn under the grid."""
    e = np.asarray(scores, dtype=float).reshape(grid, grid)
    a = np.asarray(alphas, dtype=float).reshape(grid, grid)
    fig = plt.figure(figsize=(13, 3.8))
    width, bottom, height = 0.16, 0.12, 0.68
    picture = to_numpy_image(image) if image is not None else None
    titles = [f"{grid * grid} regions $f_i$ ({encoder_dim:,} numbers each)",
              r"scores $e_{ti} = w^\top \tanh(W_f f_i + W_h h_{t-1})$", r"weights $\alpha_t$ (sum to 1)"]
    for k, (values, pic, cmap) in enumerate([(None, picture, "Greys"), (e, None, "coolwarm"), (a, None, "viridis")]):
        ax = fig.add_axes((0.02 + 0.25 * k, bottom, width, height))
        _grid_panel(ax, values if values is not None else np.zeros((grid, grid)), pic, grid, titles[k], cmap)
    r, c = np.unravel_index(int(a.argmax()), a.shape)
    ax.text(c + 0.5, r + 0.5, f"{a[r, c]:.2f}", ha="center", va="center", color="red", fontsize=8)
    _arrow(fig, (0.19, 0.46), (0.26, 0.46), "score each\nregion")
    fig.text(0.225, 0.16, r"$h_{t-1}$", ha="center", fontsize=10, bbox=dict(boxstyle="round", fc="#fde9c9"))
    _arrow(fig, (0.225, 0.21), (0.225, 0.44))
    _arrow(fig, (0.44, 0.46), (0.51, 0.46), "softmax over\nthe regions")
    _arrow(fig, (0.69, 0.46), (0.76, 0.46), "weighted\naverage")
    for k, text in enumerate(_DECODER):
        y = 0.78 - 0.2 * k
        fig.text(0.775, y, text, fontsize=9, va="center", bbox=dict(boxstyle="round", fc="#e8eefc"))
        if k:
            _arrow(fig, (0.80, y + 0.15), (0.80, y + 0.05))
    return fig
