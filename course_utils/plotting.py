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


# --------------------------------------------------------------------------- notebooks 01-03
def show_matrix(
    matrix: Any, title: Optional[str] = None, fmt: str = "{:g}", cmap: str = "gray", ax: Optional[plt.Axes] = None,
    vmin: Optional[float] = None, vmax: Optional[float] = None,
) -> plt.Figure:
    """A small 2-D array ``(rows, cols)`` drawn as pixels with each value written in its cell.

    For worked examples (a 5x5 image and its 3x3 kernel, an 8x8 crop of a photo):
    the picture and the numbers are the same object.
    """
    m = np.asarray(to_numpy_image(matrix), dtype=float)
    if m.ndim != 2:
        raise ValueError(f"show_matrix draws a 2-D array, got shape {m.shape}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(0.5 + 0.45 * m.shape[1], 0.5 + 0.45 * m.shape[0]))
    else:
        fig = ax.figure
    lo = np.nanmin(m) if vmin is None else vmin
    hi = np.nanmax(m) if vmax is None else vmax
    ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi)
    mid = (lo + hi) / 2
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=8, color="black" if v > mid else "white")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def show_histograms(
    images: Sequence[Any],
    titles: Optional[Sequence[str]] = None,
    bins: int = 256,
    value_range: tuple[float, float] = (0, 255),
    size: float = 3.0,
) -> plt.Figure:
    """Images on the top row and their histograms below, one column each, for comparison.

    Grey images get one grey histogram, colour images ``(H, W, 3)`` one curve per channel.
    Counts come from ``np.histogram`` and are drawn as steps (much faster than ``plt.hist``
    on photos).
    """
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(size * n, size * 1.8), squeeze=False)
    edges = np.linspace(value_range[0], value_range[1] + 1, bins + 1)  # integer levels fall inside a bin
    for i, image in enumerate(images):
        img = to_numpy_image(image)
        axes[0, i].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=value_range[0], vmax=value_range[1])
        axes[0, i].axis("off")
        if titles is not None:
            axes[0, i].set_title(titles[i], fontsize=10)
        channels = [(img, "gray")] if img.ndim == 2 else list(zip(np.moveaxis(img, 2, 0), ("red", "green", "blue")))
        for channel, colour in channels:
            counts, _ = np.histogram(channel, bins=edges)
            axes[1, i].stairs(counts, edges, fill=img.ndim == 2, color=colour, alpha=0.8)
        axes[1, i].set_xlabel("grey level" if img.ndim == 2 else "value per channel")
        axes[1, i].set_yticks([])
    fig.tight_layout()
    return fig


def plot_decision_boundary(
    predict: Any, x: Any, y: Any, title: Optional[str] = None, ax: Optional[plt.Axes] = None, resolution: int = 200
) -> plt.Figure:
    """Regions where a classifier answers each class, with the points ``x (n, 2)`` coloured by ``y (n,)``.

    ``predict`` maps an array ``(m, 2)`` of points to ``(m,)`` class indices (numpy or torch).
    """
    x, y = np.asarray(to_numpy_image(x), dtype=float), np.asarray(to_numpy_image(y))
    pad = 0.5
    (x0, y0), (x1, y1) = x.min(0) - pad, x.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (resolution**2, 2)
    z = np.asarray(to_numpy_image(predict(grid))).reshape(gx.shape)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 3.5))
    else:
        fig = ax.figure
    ax.contourf(gx, gy, z, alpha=0.3, cmap="coolwarm", levels=np.arange(z.max() + 2) - 0.5)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolors="k", s=25)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------- caption data (notebook 07)
def plot_vocab_curve(
    counts: Mapping[str, int],
    thresholds: Sequence[int] = tuple(range(1, 11)),
    mark: Optional[int] = 2,
    title: str = "vocabulary size vs frequency threshold",
) -> plt.Figure:
    """Words kept (left axis) and share of training tokens they cover (right axis, %) per threshold.

    ``counts``: word -> number of times it appears in the training captions. A word is
    kept at threshold ``t`` when its count is ``>= t`` (the ``min_freq`` of ``Vocabulary.build``);
    ``mark`` draws the chosen threshold with its figures.
    """
    freq = np.array(sorted(counts.values()), dtype=np.int64)  # (n_words,) ascending
    total = max(int(freq.sum()), 1)
    ts = np.array(list(thresholds), dtype=np.int64)
    first = np.searchsorted(freq, ts, side="left")  # index of the first count >= t
    sizes = len(freq) - first
    covered = np.array([freq[i:].sum() for i in first]) / total * 100
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.plot(ts, sizes, marker="o", color="tab:blue")
    if ts.min() > 0 and ts.max() / ts.min() > 20:
        ax.set_xscale("log")  # thresholds such as 1, 2, 5, ..., 100 spread evenly
    ax.set_xlabel("minimum frequency (keep words seen >= t times)")
    ax.set_ylabel("words kept", color="tab:blue")
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.set_ylim(0, max(int(sizes.max()), 1) * 1.1)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(ts, covered, marker="s", color="tab:orange")
    ax2.set_ylabel("training tokens covered (%)", color="tab:orange")
    ax2.set_ylim(0, 105)
    if mark is not None and mark in set(ts.tolist()):
        i = int(np.flatnonzero(ts == mark)[0])
        ax.axvline(mark, color="gray", ls="--")
        ax.annotate(f"min_freq={mark}: {sizes[i]:,} words\n{covered[i]:.1f}% of tokens", (mark, sizes[i]),
                    textcoords="offset points", xytext=(8, -36), fontsize=9,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})  # fmt: skip
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_caption_lengths(
    lengths: Sequence[int],
    max_len: Optional[int] = None,
    title: str = "caption length (tokens)",
) -> plt.Figure:
    """Histogram of caption lengths with the mean, the 95th percentile and ``max_len`` if given.

    The legend says how many captions ``max_len`` would truncate.
    """
    lengths = np.asarray(list(lengths), dtype=np.int64)
    if lengths.size == 0:
        raise ValueError("plot_caption_lengths needs at least one caption length")
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    bins = np.arange(lengths.min(), lengths.max() + 2) - 0.5  # one bar per integer length
    ax.hist(lengths, bins=bins, color="tab:blue", alpha=0.8)
    ax.axvline(lengths.mean(), color="black", ls="-", label=f"mean {lengths.mean():.1f}")
    p95 = float(np.percentile(lengths, 95))
    ax.axvline(p95, color="tab:orange", ls="--", label=f"95th percentile {p95:.0f}")
    if max_len is not None:
        cut = int((lengths > max_len).sum())
        ax.axvline(max_len + 0.5, color="tab:red", ls=":",
                   label=f"max_len {max_len}: {cut} of {lengths.size} truncated")  # fmt: skip
    ax.set_xlabel("tokens per caption")
    ax.set_ylabel("captions")
    ax.set_title(title)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


def show_boxes(
    image: Any,
    objects: Sequence[Mapping[str, Any]],
    title: Optional[str] = None,
    ax: Optional[plt.Axes] = None,
) -> plt.Figure:
    """An image with ground-truth boxes, each labelled with the caption words that name it.

    ``objects``: dicts with ``box`` ``[x0, y0, x1, y1]`` in pixels and ``words`` (a list of
    str), as in the synthetic dataset's ``boxes.json`` (``synth.load_boxes``).
    """
    import textwrap

    from matplotlib.patches import Rectangle

    img = to_numpy_image(image)
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.5, 3.5))
    else:
        fig = ax.figure
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    for obj in objects:
        x0, y0, x1, y1 = obj["box"]
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", lw=2))
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="black", lw=1, ls="--"))
        top = y0 >= 0.1 * img.shape[0]  # label above the box, or below it when the box touches the top
        ax.text(x0, y0 - 1 if top else y1 + 1, " ".join(obj.get("words", [])), fontsize=8, color="black",
                va="bottom" if top else "top",
                bbox={"facecolor": "white", "alpha": 0.8, "pad": 1, "edgecolor": "none"})  # fmt: skip
    ax.axis("off")
    if title:
        ax.set_title(textwrap.fill(title, 36), fontsize=9)
    return fig


def plot_attention(
    image: Any,
    words: Sequence[str],
    alphas: Any,
    grid: int,
    ncols: int = 5,
    size: float = 2.2,
    title: Optional[str] = None,
) -> plt.Figure:
    """Attention overlays, one panel per generated word.

    ``image``: the picture (PIL, ``(H, W, 3)`` array or ``(3, H, W)`` tensor in [0, 1]);
    ``alphas (len(words), grid*grid)``: attention weights over the ``grid x grid`` regions
    (row-major), stretched over the image (bilinear) with the brightest region where the
    model looked when it produced the word.
    """
    img = to_numpy_image(image)
    a = np.asarray(alphas.detach().cpu() if hasattr(alphas, "detach") else alphas, dtype=float)
    if a.shape != (len(words), grid * grid):
        raise ValueError(f"alphas has shape {a.shape}; expected ({len(words)}, {grid * grid}) for "
                         f"{len(words)} words on a {grid}x{grid} grid")  # fmt: skip
    n = len(words) + 1
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    h, w = img.shape[:2]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        if i == 0:
            ax.set_title("image", fontsize=10)
            continue
        heat = a[i - 1].reshape(grid, grid)
        ax.imshow(heat, cmap="inferno", alpha=0.6, extent=(0, w, h, 0), interpolation="bilinear",
                  vmin=0, vmax=max(float(heat.max()), 1e-8))  # fmt: skip
        ax.set_title(words[i - 1], fontsize=11)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- notebooks 04-06
def plot_feature_maps(maps: Any, max_maps: int = 16, ncols: int = 8, title: Optional[str] = None) -> plt.Figure:
    """The first ``max_maps`` channels of ``maps (C, h, w)`` (one image's activations), one panel each.

    Each panel has its own grey scale (bright = strong response), titled with its channel number.
    """
    arr = maps.detach().cpu().numpy() if hasattr(maps, "detach") else np.asarray(maps)
    if arr.ndim != 3:
        raise ValueError(f"plot_feature_maps expects (C, h, w), got shape {arr.shape}")
    n = min(max_maps, arr.shape[0])
    return show_images(list(arr[:n]), titles=[f"channel {c}" for c in range(n)], ncols=ncols, size=1.6,
                       suptitle=title)  # fmt: skip


def plot_gradient_norms(norms: Mapping[str, Sequence[float]], title: str = "gradient reaching each step") -> plt.Figure:
    """``||dL/dh_t||`` against the distance ``T - t`` to the loss, log scale, one curve per model."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for label, values in norms.items():
        values = np.asarray(values, dtype=float)
        ax.semilogy(np.arange(len(values))[::-1], values, marker=".", label=label)
    ax.set_xlabel("steps between h_t and the loss (T - t)")
    ax.set_ylabel("||dL/dh_t||")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    return fig
