"""Images as arrays: sample photos, grey conversion, file sizes, compression error, histograms.

The reference versions of what notebook 01 builds. An image is a numpy array:

* binary ``(H, W)`` bool (the master's thesis: 0 = black, 1 = white),
* grey ``(H, W)`` uint8, 0 (black) ... 255 (white),
* colour ``(H, W, 3)`` uint8, one red, green and blue value per pixel.

The photos come with scikit-image and matplotlib, so everything works offline.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
from PIL import Image, ImageEnhance

from course_utils.checks import CheckError, ok
from course_utils.files import write_atomic

# --------------------------------------------------------------------------- sample photos
# name -> (library, what to load, kind of image). Every file below ships inside the
# scikit-image wheel or matplotlib's sample data: no download is ever needed.
SAMPLES: dict[str, tuple[str, str, str]] = {
    "astronaut": ("skimage", "astronaut", "rgb"),  # Eileen Collins, NASA, public domain
    "coffee": ("skimage", "coffee", "rgb"),
    "chelsea": ("skimage", "chelsea", "rgb"),  # a cat
    "rocket": ("skimage", "rocket", "rgb"),
    "camera": ("skimage", "camera", "grey"),  # the classic cameraman
    "moon": ("skimage", "moon", "grey"),  # a famously low-contrast photo
    "coins": ("skimage", "coins", "grey"),
    "text": ("skimage", "text", "grey"),
    "horse": ("skimage", "horse", "binary"),  # silhouette: False = horse (black), True = background
    "grace_hopper": ("matplotlib", "grace_hopper.jpg", "rgb"),
}


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(getattr(skimage.data, name)())


def _load_matplotlib(filename: str) -> np.ndarray:
    from matplotlib import cbook

    with cbook.get_sample_data(filename) as f:
        return np.asarray(Image.open(f).convert("RGB"))


def synthetic_photo(kind: str = "rgb", size: tuple[int, int] = (256, 256), seed: int = 0) -> np.ndarray:
    """A generated stand-in photo: smooth gradients, a disc, a square and some texture.

    The fallback of :func:`load_sample` when a sample file is missing. ``kind`` is
    ``"rgb"`` -> ``(H, W, 3)`` uint8, ``"grey"`` -> ``(H, W)`` uint8, ``"binary"`` -> ``(H, W)`` bool.
    """
    if kind not in ("rgb", "grey", "binary"):
        raise ValueError(f"kind must be 'rgb', 'grey' or 'binary', got {kind!r}")
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w]).reshape(2, 1, 1)  # (H, W) each, in [0, 1)
    rng = np.random.default_rng(seed)
    disc = (xx - 0.35) ** 2 + (yy - 0.4) ** 2 < 0.05
    square = (np.abs(xx - 0.7) < 0.15) & (np.abs(yy - 0.65) < 0.15)
    if kind == "binary":
        return ~(disc | square)  # shapes black on white, like the horse
    red = 60 + 120 * xx + 60 * disc
    green = 50 + 100 * yy + 80 * square
    blue = 120 + 60 * np.sin(6 * xx) * np.cos(4 * yy)
    rgb = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, size=(h, w, 3))  # (H, W, 3)
    rgb = np.clip(rgb, 0, 255).round().astype(np.uint8)
    return rgb if kind == "rgb" else to_grey(rgb).round().astype(np.uint8)


def load_sample(name: str, quiet: bool = False) -> np.ndarray:
    """A sample photo as an array: ``(H, W, 3)`` uint8, ``(H, W)`` uint8 or ``(H, W)`` bool.

    Names are the keys of :data:`SAMPLES`. If the file cannot be read (a trimmed
    install), one line says so and a :func:`synthetic_photo` of the same kind is
    returned instead, so the notebook carries on.
    """
    if name not in SAMPLES:
        raise ValueError(f"unknown sample photo {name!r}; choose from {', '.join(SAMPLES)}")
    library, what, kind = SAMPLES[name]
    loader: Callable[[str], np.ndarray] = _load_skimage if library == "skimage" else _load_matplotlib
    try:
        return loader(what)
    except Exception as err:  # missing file, missing optional package, no network for a download
        if not quiet:
            print(f"sample photo {name!r} unavailable ({type(err).__name__}: {err}); using a generated image instead")
        return synthetic_photo(kind)


# --------------------------------------------------------------------------- colour and grey
BT601 = (0.299, 0.587, 0.114)  # luma weights of JPEG and PIL's convert("L")
BT709 = (0.2125, 0.7154, 0.0721)  # HDTV weights, used by skimage.color.rgb2gray
MEAN = (1 / 3, 1 / 3, 1 / 3)  # the plain average of the CNN slides


def split_channels(rgb: np.ndarray) -> list[np.ndarray]:
    """``(H, W, 3)`` -> ``[red, green, blue]``, each ``(H, W)`` (views, no copy)."""
    _require_rgb(rgb, "split_channels")
    return [rgb[:, :, c] for c in range(3)]


def isolate_channel(rgb: np.ndarray, channel: int) -> np.ndarray:
    """``(H, W, 3)`` copy where every channel but ``channel`` (0 red, 1 green, 2 blue) is zero."""
    _require_rgb(rgb, "isolate_channel")
    out = np.zeros_like(rgb)
    out[:, :, channel] = rgb[:, :, channel]
    return out


def to_grey(rgb: np.ndarray, weights: Sequence[float] = BT601) -> np.ndarray:
    """Grey level ``w_r R + w_g G + w_b B`` of each pixel: ``(H, W, 3)`` -> ``(H, W)`` float64.

    Same units as the input (0-255 for uint8). The weights sum to 1, so white stays
    255; green weighs most because our eyes are most sensitive to it.
    """
    _require_rgb(rgb, "to_grey")
    return rgb.astype(np.float64) @ np.asarray(weights, dtype=np.float64)  # (H, W, 3) @ (3,) -> (H, W)


def binarize(grey: np.ndarray, threshold: Optional[float] = None) -> np.ndarray:
    """``(H, W)`` -> ``(H, W)`` bool, True (white) where ``grey > threshold``.

    Without a threshold, Otsu's method (scikit-image) picks the one that best separates
    the two peaks of the histogram.
    """
    if grey.ndim != 2:
        raise ValueError(f"binarize expects a grey image (H, W), got shape {grey.shape}")
    if threshold is None:
        from skimage.filters import threshold_otsu

        threshold = float(threshold_otsu(grey))
    return grey > threshold


def _require_rgb(rgb: np.ndarray, fn: str) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{fn} expects a colour image of shape (H, W, 3), got shape {rgb.shape}")


# --------------------------------------------------------------------------- BMP arithmetic
BMP_HEADER_BYTES = 54  # 14-byte file header + 40-byte BITMAPINFOHEADER


def bmp_row_bytes(width: int, bits_per_pixel: int = 24) -> int:
    """Bytes of one stored row: rows are padded with zeros to a multiple of 4 bytes."""
    return (width * bits_per_pixel + 31) // 32 * 4


def bmp_size(width: int, height: int, bits_per_pixel: int = 24) -> int:
    """Size in bytes of an uncompressed BMP file.

    54-byte header, then a colour table of ``2**bits`` entries of 4 bytes for images of
    8 bits per pixel or fewer (grey, binary), then the padded rows. The master's thesis' example:
    ``bmp_size(800, 600) == 800 * 600 * 3 + 54 == 1_440_054``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if bits_per_pixel not in (1, 4, 8, 24, 32):
        raise ValueError(f"bits_per_pixel must be 1, 4, 8, 24 or 32, got {bits_per_pixel}")
    palette = 4 * 2**bits_per_pixel if bits_per_pixel <= 8 else 0
    return BMP_HEADER_BYTES + palette + bmp_row_bytes(width, bits_per_pixel) * height


BMP_PIXELS_PER_METRE = 3780  # the resolution fields: 96 dots per inch, what PIL writes
# (offset, size in bytes, meaning) of the 15 fields of the 54-byte header, little-endian
BMP_HEADER_FIELDS = [(0, 2, "signature b'BM'"), (2, 4, "file size"), (6, 4, "reserved (0)"),
                     (10, 4, "offset of the pixels (54)"), (14, 4, "info header size (40)"), (18, 4, "width"),
                     (22, 4, "height"), (26, 2, "planes (1)"), (28, 2, "bits per pixel (24)"),
                     (30, 4, "compression (0)"), (34, 4, "size of the pixel data"),
                     (38, 4, "horizontal pixels per metre (3780)"), (42, 4, "vertical pixels per metre (3780)"),
                     (46, 4, "colours in a palette (0)"), (50, 4, "important colours (0)")]  # fmt: skip


def bmp_bytes(rgb: np.ndarray) -> bytes:
    """The bytes of a 24-bit BMP file of ``rgb (H, W, 3)`` uint8: byte for byte what PIL writes.

    A 14-byte file header and a 40-byte info header (little-endian integers, ``struct.pack``),
    then the rows from the *bottom* one up, each pixel as blue, green, red, each row padded with
    zeros to a multiple of 4 bytes.
    """
    _require_rgb(rgb, "bmp_bytes")
    height, width = rgb.shape[:2]
    pixels = np.zeros((height, bmp_row_bytes(width)), np.uint8)  # (H, row bytes): the padding stays 0
    pixels[:, : 3 * width] = rgb[::-1, :, ::-1].reshape(height, 3 * width)  # bottom row first; B, G, R
    ppm = BMP_PIXELS_PER_METRE
    file_header = struct.pack("<2sIHHI", b"BM", BMP_HEADER_BYTES + pixels.size, 0, 0, BMP_HEADER_BYTES)
    info_header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, pixels.size, ppm, ppm, 0, 0)
    return file_header + info_header + pixels.tobytes()


def check_bmp_bytes(writer: Callable[[np.ndarray], bytes], rgb: np.ndarray, name: str = "bmp_bytes") -> None:
    """Compare ``writer(rgb)`` with :func:`bmp_bytes` and say which header field or pixel byte differs."""
    got, want = writer(rgb), bmp_bytes(rgb)
    label = f"{name} of a {rgb.shape[0]} x {rgb.shape[1]} image"
    if not isinstance(got, (bytes, bytearray)):
        raise CheckError(f"{label}: returned a {type(got).__name__}, expected bytes (b''.join(...) or .tobytes())")
    if len(got) != len(want):
        raise CheckError(f"{label}: {len(got)} bytes, expected {len(want)} = 54 + {rgb.shape[0]} rows of "
                         f"{bmp_row_bytes(rgb.shape[1])} bytes (3 x {rgb.shape[1]} = {3 * rgb.shape[1]}, "
                         "padded to a multiple of 4)")
    differ = np.flatnonzero(np.frombuffer(bytes(got), np.uint8) != np.frombuffer(want, np.uint8))
    diff = int(differ[0]) if differ.size else None
    if diff is not None and diff < BMP_HEADER_BYTES:
        start, size, field = next(f for f in BMP_HEADER_FIELDS if f[0] <= diff < f[0] + f[1])
        fmt = {2: "<H", 4: "<I"}[size] if start else "<2s"
        value = lambda data: struct.unpack(fmt, bytes(data[start : start + size]))[0]  # noqa: E731
        raise CheckError(f"{label}: header bytes {start}-{start + size - 1} ({field}) hold {value(got)!r}, "
                         f"expected {value(want)!r} (integers are little-endian: struct.pack('<...'))")
    if diff is not None:
        row_bytes = bmp_row_bytes(rgb.shape[1])
        file_row, column = divmod(diff - BMP_HEADER_BYTES, row_bytes)
        row = rgb.shape[0] - 1 - file_row
        where = (f"a padding byte of row {row}" if column >= 3 * rgb.shape[1]
                 else f"the {'blue green red'.split()[column % 3]} byte of pixel (row {row}, column {column // 3})")
        known = {"your rows start with the top one; a BMP stores the bottom row first": rgb[::-1],
                 "your pixels are red, green, blue; a BMP stores blue, green, red": rgb[:, :, ::-1]}
        hint = next((h for h, other in known.items() if bytes(got[54:]) == bmp_bytes(other)[54:]),
                    "the file stores the bottom row first, each pixel as blue, green, red, each row padded "
                    "with zeros to a multiple of 4 bytes")
        raise CheckError(f"{label}: byte {diff} is {got[diff]}, expected {want[diff]}, {where} (rows counted "
                         f"from the top of the image)\n  hint: {hint}")
    ok(f"{label} (byte for byte)")


# --------------------------------------------------------------------------- files and compression
def _pil(image: np.ndarray) -> Image.Image:
    if image.dtype == bool:
        return Image.fromarray(image).convert("1")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 or bool image, got dtype {image.dtype}")
    return Image.fromarray(image)


def _save_kwargs(fmt: str, quality: Optional[int]) -> dict:
    if fmt.upper() == "JPEG":
        if quality is None or not 1 <= quality <= 100:
            raise ValueError(f"JPEG needs a quality between 1 and 100, got {quality!r}")
        return {"quality": quality}
    return {}


def encode(image: np.ndarray, fmt: str, quality: Optional[int] = None) -> bytes:
    """The bytes of ``image`` saved as ``fmt`` ("BMP", "PNG", "JPEG", "GIF"), in memory."""
    buffer = io.BytesIO()
    _pil(image).save(buffer, format=fmt.upper(), **_save_kwargs(fmt, quality))
    return buffer.getvalue()


def decode(data: bytes, mode: Optional[str] = None) -> np.ndarray:
    """Bytes of an image file -> array; ``mode="RGB"`` gives ``(H, W, 3)``, ``mode="L"`` gives ``(H, W)``.

    Without ``mode``, palette images (GIF) come back as RGB and the rest as stored.
    """
    img = Image.open(io.BytesIO(data))
    if mode is not None:
        img = img.convert(mode)
    elif img.mode in ("P", "RGBA", "CMYK"):
        img = img.convert("RGB")
    return np.asarray(img)


def save_image(image: np.ndarray, path: Union[str, Path], quality: Optional[int] = None) -> int:
    """Write ``image`` to ``path`` (format from the suffix), atomically; return the file size in bytes."""
    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), path.suffix[1:].upper())
    data = encode(image, fmt, quality)
    write_atomic(path, data)
    return path.stat().st_size


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error between two images of the same shape (in grey levels squared)."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``; ``inf`` for equal images.

    Written out because notebook 01 teaches it; it equals
    ``skimage.metrics.peak_signal_noise_ratio`` (tested). About 30 dB and above looks
    close to the original; every 6 dB halves the typical error.
    """
    err = mse(a, b)
    return float("inf") if err == 0 else float(10 * np.log10(data_range**2 / err))


def compression_table(image: np.ndarray, jpeg_qualities: Sequence[int] = (95, 75, 50, 25, 10)) -> list[dict]:
    """Size and error of ``image`` saved as BMP, PNG, GIF and JPEG at several qualities.

    One dict per encoding: ``format``, ``quality`` (None when it does not apply),
    ``bytes``, ``ratio`` (BMP size / this size), ``psnr`` (dB, inf = lossless) and
    ``max_error`` (largest absolute difference in grey levels after decoding).
    """
    encodings = [("BMP", None), ("PNG", None), ("GIF", None)] + [("JPEG", q) for q in jpeg_qualities]
    rows, raw = [], None
    for fmt, quality in encodings:
        data = encode(image, fmt, quality)
        back = decode(data, mode="L" if image.ndim == 2 else "RGB")
        raw = raw or len(data)  # BMP comes first: the uncompressed reference
        diff = np.abs(back.astype(np.int16) - image.astype(np.int16))
        rows.append(
            {
                "format": fmt,
                "quality": quality,
                "bytes": len(data),
                "ratio": raw / len(data),
                "psnr": psnr(image, back),
                "max_error": int(diff.max()),
            }
        )
    return rows


# --------------------------------------------------------------------------- histograms and contrast
def histogram(grey: np.ndarray) -> np.ndarray:
    """Number of pixels at each grey level: ``(H, W)`` uint8 -> ``(256,)`` int64, summing to ``H * W``."""
    if grey.dtype != np.uint8:
        raise ValueError(f"histogram expects a uint8 image (levels 0-255), got dtype {grey.dtype}")
    return np.bincount(grey.ravel(), minlength=256)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Scale the distance of every pixel to the mean grey by ``factor`` (PIL ImageEnhance), clipped to 0-255.

    ``factor < 1`` squeezes the histogram towards the mean, ``factor > 1`` spreads it
    (and piles the overflow at 0 and 255).
    """
    return np.asarray(ImageEnhance.Contrast(_pil(image)).enhance(factor))


def stretch_contrast(grey: np.ndarray, low: float = 2, high: float = 98) -> np.ndarray:
    """Map the ``low``-th .. ``high``-th percentile of grey levels onto 0 .. 255 (scikit-image)."""
    from skimage.exposure import rescale_intensity

    lo, hi = np.percentile(grey, (low, high))
    return rescale_intensity(grey, in_range=(lo, hi), out_range=(0, 255)).astype(np.uint8)


def equalize(grey: np.ndarray) -> np.ndarray:
    """Histogram equalisation (scikit-image): spread the levels so the cumulative histogram is a straight line."""
    from skimage.exposure import equalize_hist

    return (equalize_hist(grey) * 255).round().astype(np.uint8)


def contrast_stats(grey: np.ndarray) -> dict:
    """How spread out the grey levels are: ``min``, ``max``, the 2nd and 98th percentiles
    ``p2``, ``p98`` (a few outliers make min and max misleading), ``std`` and
    ``levels_used`` (how many of the 256 levels occur)."""
    p2, p98 = np.percentile(grey, (2, 98))
    return {
        "min": int(grey.min()),
        "max": int(grey.max()),
        "p2": float(p2),
        "p98": float(p98),
        "std": float(grey.std()),
        "levels_used": int(np.count_nonzero(histogram(grey))),
    }
