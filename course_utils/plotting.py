"""Plotting helpers shared by every notebook (matplotlib).

Each function draws one kind of figure and returns the ``matplotlib.figure.Figure``
so a notebook can save it (``fig.savefig(...)``) and a test can inspect it.
Images may be numpy arrays ``(H, W)``, ``(H, W, 3)`` or torch tensors ``(3, H, W)``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np


def to_numpy_image(image: Any) -> np.ndarray:
    """Array ``(H, W)`` or ``(H, W, C)`` from a PIL image, array or tensor ``(C, H, W)``."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] in (1, 3):
            image = image.transpose(1, 2, 0)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return arr


def show_images(
    images: Sequence[Any],
    titles: Optional[Sequence[str]] = None,
    ncols: int = 4,
    cmap: str = "gray",
    size: float = 3.0,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    suptitle: Optional[str] = None,
) -> plt.Figure:
    """Grid of images with optional titles; grey images use ``cmap``."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = to_numpy_image(images[i])
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None, vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(titles[i], fontsize=10)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def before_after(
    before: Any, after: Any, titles: Sequence[str] = ("before", "after"), **kwargs: Any
) -> plt.Figure:
    """Two images side by side (e.g. noisy vs filtered)."""
    return show_images([before, after], titles=list(titles), ncols=2, **kwargs)


def show_histogram(
    image: Any, bins: int = 256, title: str = "histogram", value_range: tuple[float, float] = (0, 255)
) -> plt.Figure:
    """The image beside its histogram (one curve per channel for colour images)."""
    img = to_numpy_image(image)
    fig, (ax_img, ax_hist) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_img.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=value_range[0], vmax=value_range[1])
    ax_img.axis("off")
    if img.ndim == 2:
        ax_hist.hist(img.ravel(), bins=bins, range=value_range, color="gray")
    else:
        for c, colour in enumerate(("red", "green", "blue")[: img.shape[2]]):
            ax_hist.hist(img[:, :, c].ravel(), bins=bins, range=value_range, color=colour, alpha=0.4, label=colour)
        ax_hist.legend()
    ax_hist.set_xlabel("pixel value")
    ax_hist.set_ylabel("count")
    ax_hist.set_title(title)
    fig.tight_layout()
    return fig


def plot_curves(
    history: Mapping[str, Sequence[float]],
    keys: Optional[Sequence[str]] = None,
    xlabel: str = "epoch",
    title: Optional[str] = None,
) -> plt.Figure:
    """Learning curves from a history dict, one panel per quantity.

    Keys sharing a suffix are drawn together: ``train_loss`` and ``val_loss`` share the
    ``loss`` panel, ``train_acc`` and ``val_acc`` the ``acc`` panel.
    """
    keys = [k for k in (keys or history) if len(history[k])]
    panels: dict[str, list[str]] = {}
    for k in keys:
        panels.setdefault(k.split("_", 1)[-1], []).append(k)
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5 * max(1, len(panels)), 3.5), squeeze=False)
    for ax, (panel, members) in zip(axes.flat, panels.items()):
        for k in members:
            ys = list(history[k])
            ax.plot(range(1, len(ys) + 1), ys, marker="o", label=k)
        ax.set_xlabel(xlabel)
        ax.set_title(panel)
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    cm: Any, class_names: Sequence[str], normalize: bool = False, title: str = "confusion matrix"
) -> plt.Figure:
    """Confusion matrix (rows = true class, columns = predicted) with counts in cells."""
    cm = np.asarray(cm, dtype=float)
    shown = cm / cm.sum(axis=1, keepdims=True).clip(min=1) if normalize else cm
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
    im = ax.imshow(shown, cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(n):
        for j in range(n):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
            ax.text(j, i, text, ha="center", va="center", color="white" if shown[i, j] > shown.max() / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title)
    fig.tight_layout()
    return fig
