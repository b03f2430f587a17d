"""Convolution and image filters: the reference versions of what notebook 02 builds.

"Convolution" here is what deep-learning libraries call convolution: slide the
kernel over the input and take the sum of elementwise products at each position,
*without* flipping the kernel (mathematicians call it cross-correlation). This is
what ``torch.nn.functional.conv2d`` computes, and what the CNN slides' worked examples use.

Shapes: a 1-D signal is ``(N,)``, a grey image ``(H, W)``, a colour image ``(H, W, 3)``,
a multi-channel input of a conv layer ``(C, H, W)``, a kernel ``(kh, kw)``.

Written with numpy by hand (windows from ``sliding_window_view``, then a sum of
products) because the notebook teaches the computation that libraries hide; the tests
check every function against torch, scipy and scikit-image.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# --------------------------------------------------------------------------- kernels of the CNN slides
LAPLACIAN = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float64)  # edge detection, 8 neighbours
LAPLACIAN_4 = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], dtype=np.float64)  # edge detection, 4 neighbours
# LAPLACIAN_4 is the pixel minus its 4 neighbours: the *negated* mathematical Laplacian
# (which is [[0, 1, 0], [1, -4, 1], [0, 1, 0]]), so sharpening "adds" it: identity + LAPLACIAN_4.
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)  # identity + LAPLACIAN_4
# The bank of 4 filters of the CNN slides (one feature map each): horizontal and vertical edges.
FILTER_BANK = np.array(
    [
        [[-1, -1, -1], [1, 1, 1], [0, 0, 0]],
        [[-1, 1, 0], [-1, 1, 0], [-1, 1, 0]],
        [[0, 0, 0], [1, 1, 1], [-1, -1, -1]],
        [[0, 1, -1], [0, 1, -1], [0, 1, -1]],
    ],
    dtype=np.float64,
)  # (4, 3, 3)


def mean_kernel(size: int) -> np.ndarray:
    """``(size, size)`` kernel of equal weights ``1 / size**2``: the mean (box) filter."""
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    return np.full((size, size), 1.0 / size**2)


# --------------------------------------------------------------------------- sizes and padding
def output_size(n: int, f: int, padding: int = 0, stride: int = 1) -> int:
    """Length of a convolution's output along one axis: ``O = (N - F + 2P) / S + 1``.

    When ``S`` does not divide ``N - F + 2P`` the last positions that do not fit are
    dropped (floor division), as in PyTorch. Raises ``ValueError`` if the kernel is
    larger than the padded input.
    """
    if f < 1 or stride < 1 or padding < 0:
        raise ValueError(f"need f >= 1, stride >= 1, padding >= 0; got f={f}, stride={stride}, padding={padding}")
    if n + 2 * padding < f:
        raise ValueError(f"kernel of size {f} does not fit in an input of size {n} padded by {padding}")
    return (n - f + 2 * padding) // stride + 1


def same_padding(f: int) -> int:
    """Padding ``P = (F - 1) / 2`` that keeps the size unchanged at stride 1 (odd ``F`` only)."""
    if f % 2 == 0:
        raise ValueError(f"'same' padding needs an odd kernel size, got {f}")
    return (f - 1) // 2


# --------------------------------------------------------------------------- convolution
def conv1d(signal: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """``(N,) * (F,) -> (O,)`` with ``O = (N - F + 2P) / S + 1``; zero padding on both ends.

    The CNN slides: ``conv1d([0, 1, 2, -1, 1, -3, 0], [1, 0, -1], stride=2) == [-2, 1, 1]``.
    """
    x = np.asarray(signal, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 1 or k.ndim != 1:
        raise ValueError(f"conv1d expects a (N,) signal and a (F,) kernel, got {x.shape} and {k.shape}")
    o = output_size(len(x), len(k), padding, stride)
    x = np.pad(x, padding)
    windows = sliding_window_view(x, len(k))[::stride][:o]  # (O, F): one row per position
    return windows @ k


def conv2d(image: np.ndarray, kernel: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """``(H, W) * (kh, kw) -> (Oh, Ow)``, zero padding, the same stride on both axes.

    The CNN slides' 5x5 * 3x3 example gives ``[[4, 3, 4], [2, 4, 3], [2, 3, 4]]``.
    """
    x = np.asarray(image, dtype=np.float64)
    k = np.asarray(kernel, dtype=np.float64)
    if x.ndim != 2 or k.ndim != 2:
        raise ValueError(f"conv2d expects a (H, W) image and a (kh, kw) kernel, got {x.shape} and {k.shape}")
    oh = output_size(x.shape[0], k.shape[0], padding, stride)
    ow = output_size(x.shape[1], k.shape[1], padding, stride)
    x = np.pad(x, padding)
    windows = sliding_window_view(x, k.shape)[::stride, ::stride][:oh, :ow]  # (Oh, Ow, kh, kw)
    return np.einsum("ijkl,kl->ij", windows, k)


def conv2d_channels(image: np.ndarray, kernels: np.ndarray, stride: int = 1, padding: int = 0) -> np.ndarray:
    """One filter over a multi-channel input: ``(C, H, W) * (C, kh, kw) -> (Oh, Ow)``.

    Each channel is convolved with its own kernel and the C results are added: one
    filter gives one feature map (the CNN slides' RGB example: 30 + 18 + 111 = 159).
    """
    x, k = np.asarray(image), np.asarray(kernels)
    if x.ndim != 3 or k.ndim != 3 or x.shape[0] != k.shape[0]:
        raise ValueError(f"expected (C, H, W) and (C, kh, kw) with the same C, got {x.shape} and {k.shape}")
    return sum(conv2d(x[c], k[c], stride, padding) for c in range(x.shape[0]))


def im2col(images: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Every window of a batch as one column: ``(batch, C, H, W) -> (batch, C * kh * kw, Oh * Ow)``.

    The layout of ``torch.nn.functional.unfold``: a column holds one window, channel by channel,
    each channel's window row by row; the columns follow the output positions row by row.
    """
    x = np.asarray(images, dtype=np.float64)
    batch, channels = x.shape[:2]
    oh = output_size(x.shape[2], kh, padding, stride)
    ow = output_size(x.shape[3], kw, padding, stride)
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))  # the batch and channels: no padding
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :oh, :ow]
    # (batch, C, Oh, Ow, kh, kw) -> (batch, C, kh, kw, Oh, Ow) -> (batch, C * kh * kw, Oh * Ow)
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(batch, channels * kh * kw, oh * ow)


def conv2d_im2col(
    images: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """``torch.nn.Conv2d``'s computation as one matrix product over :func:`im2col`'s columns.

    ``images (batch, C_in, H, W)``, ``weight (C_out, C_in, kh, kw)``, ``bias (C_out,)`` ->
    ``(batch, C_out, Oh, Ow)``.
    """
    weight = np.asarray(weight, dtype=np.float64)
    c_out, _, kh, kw = weight.shape
    oh = output_size(np.shape(images)[2], kh, padding, stride)
    ow = output_size(np.shape(images)[3], kw, padding, stride)
    cols = im2col(images, kh, kw, stride, padding)  # (batch, C_in * kh * kw, Oh * Ow)
    out = weight.reshape(c_out, -1) @ cols + np.asarray(bias, dtype=np.float64)[:, None]  # (batch, C_out, Oh * Ow)
    return out.reshape(-1, c_out, oh, ow)


def filter2d(image: np.ndarray, kernel: np.ndarray, mode: str = "edge") -> np.ndarray:
    """Apply a kernel to a photo, keeping its size: ``(H, W)`` or ``(H, W, 3)`` -> same shape, float64.

    The border is padded with ``np.pad(mode=...)`` ("edge" repeats the border pixels,
    "constant" adds zeros, "reflect" mirrors); colour images are filtered per channel.
    The result is not clipped: a Laplacian gives negative values.
    """
    k = np.asarray(kernel, dtype=np.float64)
    ph, pw = same_padding(k.shape[0]), same_padding(k.shape[1])
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        return np.stack([filter2d(img[:, :, c], k, mode) for c in range(img.shape[2])], axis=-1)
    return conv2d(np.pad(img, ((ph, ph), (pw, pw)), mode=mode), k)


def mean_filter(image: np.ndarray, size: int = 3, mode: str = "edge") -> np.ndarray:
    """Replace each pixel by the mean of its ``size x size`` neighbourhood (the master's thesis, 1.7.1).

    Float64, same shape.
    """
    return filter2d(image, mean_kernel(size), mode)


def median_filter(image: np.ndarray, size: int = 3, mode: str = "edge") -> np.ndarray:
    """Replace each pixel by the median of its ``size x size`` neighbourhood (the master's thesis, 1.7.2).

    ``(H, W)`` or ``(H, W, 3)`` -> same shape and dtype: with an odd ``size`` the median
    is one of the neighbours' values, so no new grey level is created.
    """
    p = same_padding(size)
    img = np.asarray(image)
    if img.ndim == 3:
        return np.stack([median_filter(img[:, :, c], size, mode) for c in range(img.shape[2])], axis=-1)
    windows = sliding_window_view(np.pad(img, p, mode=mode), (size, size))  # (H, W, size, size)
    return np.median(windows.reshape(*img.shape, -1), axis=-1).astype(img.dtype)


# --------------------------------------------------------------------------- noise and display
def salt_and_pepper(image: np.ndarray, amount: float, seed: Optional[int] = 0) -> np.ndarray:
    """Set a fraction ``amount`` of the pixels to black (pepper) or white (salt), half each.

    ``(H, W)`` or ``(H, W, 3)`` uint8 -> same shape, uint8 (scikit-image ``random_noise``).
    """
    from skimage.util import random_noise

    if image.dtype != np.uint8:
        raise ValueError(f"salt_and_pepper expects a uint8 image, got dtype {image.dtype}")
    if not 0 <= amount <= 1:
        raise ValueError(f"amount is a fraction of pixels between 0 and 1, got {amount}")
    if amount == 0:
        return image.copy()
    noisy = random_noise(image, mode="s&p", amount=amount, rng=seed)  # float in [0, 1]
    return (noisy * 255).round().astype(np.uint8)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round and clip a filtered image to displayable grey levels 0-255 (uint8)."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)
