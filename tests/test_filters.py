"""Convolution, output sizes and filters: seed 004's worked examples and the libraries' answers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from scipy import ndimage

from course_utils.basics import arrays, filters

SEED_X = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
SEED_K = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])


# --------------------------------------------------------------------------- seed 004's examples
def test_seed_2d_example():
    np.testing.assert_array_equal(filters.conv2d(SEED_X, SEED_K), [[4, 3, 4], [2, 4, 3], [2, 3, 4]])


def test_seed_1d_stride_2_example():
    np.testing.assert_array_equal(filters.conv1d([0, 1, 2, -1, 1, -3, 0], [1, 0, -1], stride=2), [-2, 1, 1])


def test_seed_1d_padding_example_keeps_the_length():
    out = filters.conv1d([-1, -2, 2, 1, 2, 1, -3], [2, 1, -3], padding=1)
    # the slide shows the input again as "result"; the size (7) is its point, these are the values
    np.testing.assert_array_equal(out, [5, -10, -5, -1, 1, 14, -1])


def test_seed_rgb_example_first_value_is_159():
    r = [[11, 23, 14, 0, 0], [0, 2, 15, 10, 0], [0, 0, 3, 11, 1], [0, 0, 1, 1, 0], [0, 11, 1, 0, 0]]
    g = [[0, 0, 12, 0, 0], [0, 20, 18, 11, 0], [0, 0, 6, 4, 1], [0, 0, 3, 1, 0], [0, 90, 0, 0, 0]]
    b = [[0, 12, 98, 0, 0], [0, 0, 0, 56, 0], [3, 0, 10, 11, 16], [0, 0, 0, 1, 0], [0, 90, 12, 0, 0]]
    kr, kg, kb = (
        [[1, 0, 1], [0, 1, 0], [1, 0, 1]],
        [[-1, 1, 1], [0, 0, 0], [1, 0, 1]],
        [[1, 0, 1], [-1, 0, 0], [1, 0, 1]],
    )
    image, kernels = np.array([r, g, b]), np.array([kr, kg, kb])
    assert [filters.conv2d(image[c], kernels[c])[0, 0] for c in range(3)] == [30, 18, 111]
    out = filters.conv2d_channels(image, kernels)
    assert out[0, 0] == 159
    torch_out = F.conv2d(
        torch.tensor(image, dtype=torch.float64)[None], torch.tensor(kernels, dtype=torch.float64)[None]
    )
    np.testing.assert_allclose(out, torch_out[0, 0].numpy())


@pytest.mark.parametrize(
    "n,f,p,s,expected",
    [(7, 3, 0, 1, 5), (5, 3, 0, 2, 2), (5, 3, 1, 1, 5), (32, 5, 2, 1, 32), (4, 2, 0, 2, 2)],
)
def test_output_size_seed_examples(n, f, p, s, expected):
    assert filters.output_size(n, f, p, s) == expected


# --------------------------------------------------------------------------- against torch
@pytest.mark.parametrize("n", [3, 4, 7, 10, 11])
@pytest.mark.parametrize("f", [1, 2, 3, 5])
@pytest.mark.parametrize("p", [0, 1, 2])
@pytest.mark.parametrize("s", [1, 2, 3])
def test_output_size_matches_torch(n, f, p, s):
    if n + 2 * p < f:
        with pytest.raises(ValueError, match="does not fit"):
            filters.output_size(n, f, p, s)
        return
    out = F.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f), stride=s, padding=p)
    assert filters.output_size(n, f, p, s) == out.shape[-1]


def test_output_size_rejects_nonsense():
    for bad in [dict(f=0), dict(stride=0), dict(padding=-1)]:
        with pytest.raises(ValueError):
            filters.output_size(**{"n": 5, "f": 3, **bad})


def test_same_padding():
    assert [filters.same_padding(f) for f in (1, 3, 5, 7)] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="odd"):
        filters.same_padding(4)


@pytest.mark.parametrize(
    "shape,kshape,stride,padding",
    [
        ((5, 5), (3, 3), 1, 0),
        ((7, 9), (3, 3), 2, 1),
        ((8, 6), (2, 3), 1, 2),
        ((10, 10), (5, 5), 3, 0),
        ((4, 4), (1, 1), 1, 0),
    ],
)
def test_conv2d_matches_torch(shape, kshape, stride, padding):
    rng = np.random.default_rng(0)
    x, k = rng.normal(size=shape), rng.normal(size=kshape)
    ours = filters.conv2d(x, k, stride=stride, padding=padding)
    theirs = F.conv2d(torch.tensor(x)[None, None], torch.tensor(k)[None, None], stride=stride, padding=padding)
    np.testing.assert_allclose(ours, theirs[0, 0].numpy(), atol=1e-12)


@pytest.mark.parametrize("n,f,stride,padding", [(7, 3, 1, 0), (7, 3, 2, 0), (10, 4, 3, 2), (5, 5, 1, 1), (6, 1, 2, 0)])
def test_conv1d_matches_torch(n, f, stride, padding):
    rng = np.random.default_rng(1)
    x, k = rng.normal(size=n), rng.normal(size=f)
    theirs = F.conv1d(torch.tensor(x)[None, None], torch.tensor(k)[None, None], stride=stride, padding=padding)
    np.testing.assert_allclose(filters.conv1d(x, k, stride, padding), theirs[0, 0].numpy(), atol=1e-12)


def test_convolution_is_not_flipped():
    """Deep-learning convolution is cross-correlation: numpy's convolve flips the kernel."""
    x, k = np.array([0, 1, 2, -1, 1, -3, 0]), np.array([1, 0, -1])
    np.testing.assert_array_equal(filters.conv1d(x, k), np.correlate(x, k, mode="valid"))
    np.testing.assert_array_equal(filters.conv1d(x, k[::-1]), np.convolve(x, k, mode="valid"))


def test_conv_rejects_wrong_dimensions():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        filters.conv2d(np.zeros((3, 5, 5)), SEED_K)
    with pytest.raises(ValueError, match=r"\(N,\)"):
        filters.conv1d(np.zeros((3, 3)), [1, 0, 1])
    with pytest.raises(ValueError, match="same C"):
        filters.conv2d_channels(np.zeros((3, 5, 5)), np.zeros((2, 3, 3)))


# --------------------------------------------------------------------------- filters against scipy / scikit-image / PIL
def test_mean_filter_matches_scipy():
    grey = arrays.load_sample("camera")[:64, :80]
    np.testing.assert_allclose(
        filters.mean_filter(grey, 5), ndimage.uniform_filter(grey.astype(float), 5, mode="nearest")
    )
    rgb = arrays.load_sample("astronaut")[:40, :50]
    out = filters.mean_filter(rgb, 3)
    assert out.shape == rgb.shape
    np.testing.assert_allclose(out[:, :, 1], ndimage.uniform_filter(rgb[:, :, 1].astype(float), 3, mode="nearest"))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_median_filter_matches_scipy_skimage_and_pil(size):
    from skimage.filters import median

    grey = filters.salt_and_pepper(arrays.load_sample("camera")[:60, :70], 0.1)
    ours = filters.median_filter(grey, size)
    assert ours.dtype == np.uint8 and ours.shape == grey.shape
    np.testing.assert_array_equal(ours, ndimage.median_filter(grey, size=size, mode="nearest"))
    np.testing.assert_array_equal(ours, median(grey, footprint=np.ones((size, size), bool), mode="nearest"))
    if size > 1:
        np.testing.assert_array_equal(ours, np.asarray(Image.fromarray(grey).filter(ImageFilter.MedianFilter(size))))


def test_median_filter_rejects_even_sizes():
    with pytest.raises(ValueError, match="odd"):
        filters.median_filter(np.zeros((5, 5), np.uint8), 4)


def test_sharpen_matches_pil_inside_the_border():
    grey = arrays.load_sample("camera")[100:160, 200:280]
    ours = filters.to_uint8(filters.filter2d(grey, filters.SHARPEN))
    pil = np.asarray(
        Image.fromarray(grey).filter(ImageFilter.Kernel((3, 3), filters.SHARPEN.ravel().tolist(), scale=1))
    )
    diff = np.abs(ours.astype(int) - pil.astype(int))[1:-1, 1:-1]  # PIL leaves the border pixels unfiltered
    assert diff.max() <= 1  # rounding


def test_kernels():
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    np.testing.assert_array_equal(filters.SHARPEN, identity + filters.LAPLACIAN_4)
    flat = np.full((6, 6), 77.0)
    for k in (filters.LAPLACIAN, filters.LAPLACIAN_4, *filters.FILTER_BANK):
        np.testing.assert_allclose(filters.filter2d(flat, k), 0)  # edges only: a flat image gives 0
    np.testing.assert_allclose(filters.filter2d(flat, filters.SHARPEN), flat)
    assert filters.mean_kernel(3).sum() == pytest.approx(1)
    with pytest.raises(ValueError):
        filters.mean_kernel(0)


def test_vertical_edge_filter_responds_to_a_vertical_edge_only():
    step = np.zeros((8, 8))
    step[:, 4:] = 100  # dark left, bright right
    maps = [filters.conv2d(step, k) for k in filters.FILTER_BANK]
    assert np.abs(maps[0]).max() == 0 and np.abs(maps[2]).max() == 0  # horizontal-edge filters: nothing
    assert np.abs(maps[1]).max() == 300 and np.abs(maps[3]).max() == 300  # vertical-edge filters: 3 x 100


# --------------------------------------------------------------------------- noise
def test_salt_and_pepper():
    grey = np.full((100, 100), 128, np.uint8)
    noisy = filters.salt_and_pepper(grey, 0.2, seed=3)
    changed = noisy != grey
    assert 0.17 < changed.mean() < 0.23
    assert set(np.unique(noisy[changed])) <= {0, 255}
    assert 0.3 < (noisy[changed] == 255).mean() < 0.7
    np.testing.assert_array_equal(noisy, filters.salt_and_pepper(grey, 0.2, seed=3))
    np.testing.assert_array_equal(filters.salt_and_pepper(grey, 0.0), grey)
    with pytest.raises(ValueError, match="uint8"):
        filters.salt_and_pepper(grey.astype(float), 0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        filters.salt_and_pepper(grey, 1.5)


def test_median_beats_mean_on_salt_and_pepper():
    clean = arrays.load_sample("camera")[::2, ::2]
    noisy = filters.salt_and_pepper(clean, 0.05)
    noisy_psnr = arrays.psnr(clean, noisy)
    mean_psnr = arrays.psnr(clean, filters.to_uint8(filters.mean_filter(noisy, 3)))
    median_psnr = arrays.psnr(clean, filters.median_filter(noisy, 3))
    assert median_psnr > mean_psnr > noisy_psnr


def test_to_uint8_rounds_and_clips():
    np.testing.assert_array_equal(filters.to_uint8(np.array([-5.0, 0.4, 0.6, 254.5, 300])), [0, 0, 1, 254, 255])


def test_im2col_is_unfold_and_its_product_is_conv2d():
    rng = np.random.default_rng(0)
    for b, c, h, w, kh, kw, s, p in [(2, 3, 8, 5, 3, 2, 2, 1), (1, 1, 5, 5, 3, 3, 1, 0), (3, 2, 9, 7, 4, 3, 3, 2)]:
        x, weight, bias = rng.normal(size=(b, c, h, w)), rng.normal(size=(4, c, kh, kw)), rng.normal(size=4)
        unfold = F.unfold(torch.tensor(x), (kh, kw), stride=s, padding=p).numpy()
        assert np.array_equal(filters.im2col(x, kh, kw, s, p), unfold)
        ref = F.conv2d(torch.tensor(x), torch.tensor(weight), torch.tensor(bias), stride=s, padding=p).numpy()
        assert np.allclose(filters.conv2d_im2col(x, weight, bias, s, p), ref)
    first = filters.im2col(SEED_X[None, None], 3, 3)[0, :, 0]
    assert first.tolist() == SEED_X[:3, :3].ravel().tolist()


def test_sharpen_is_identity_plus_the_negated_laplacian():
    identity = np.zeros((3, 3))
    identity[1, 1] = 1
    math_laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])  # the discrete nabla^2
    assert np.array_equal(filters.SHARPEN, identity - math_laplacian)
    assert np.array_equal(filters.LAPLACIAN_4, -math_laplacian)
