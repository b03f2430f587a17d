"""Coloured shapes drawn on textured backgrounds: the offline images of notebook 04.

Six shapes (circle, square, triangle, star, diamond, cross) in six saturated colours,
drawn with Pillow over a background (gradient, stripes, checkerboard, blobs or dots, in
random muted colours) so that colour statistics alone cannot tell the classes apart.
:func:`shape_classification_set` makes the classification set of notebook 04; the
captioning dataset of notebook 07 (``course_utils.caption_data.synth``) draws its scenes
with the same functions.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross"]
COLOURS = {  # base RGB; each object gets a small random jitter around it
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 215, 40),
    "purple": (150, 50, 190),
    "orange": (245, 135, 25),
}
Box = list[float]  # [x0, y0, x1, y1] in pixels


def polygon(shape: str, box: Box) -> list[tuple[float, float]]:
    """Vertices of ``shape`` inscribed in ``box``; the circle is drawn as an ellipse instead."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "square":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "diamond":
        return [(cx, y0), (cx + 0.75 * r, cy), (cx, y1), (cx - 0.75 * r, cy)]
    if shape == "star":  # 10 vertices alternating outer and inner radius, one point up
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else 0.45 * r
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(ang), cy + r * 0.1 + rad * math.sin(ang)))
        return pts
    if shape == "cross":  # a plus sign with arms one third of the side wide
        a = r / 3
        return [
            (cx - a, y0), (cx + a, y0), (cx + a, cy - a), (x1, cy - a), (x1, cy + a), (cx + a, cy + a),
            (cx + a, y1), (cx - a, y1), (cx - a, cy + a), (x0, cy + a), (x0, cy - a), (cx - a, cy - a),
        ]  # fmt: skip
    raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A random low-saturation RGB colour ``(3,)`` in 0-255, so saturated shapes stand out."""
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.05, 0.35), rng.uniform(0.35, 0.9))
    return np.array([r, g, b]) * 255


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A textured background ``(size, size, 3)`` uint8: gradient, stripes, checker, blobs or dots."""
    kind = rng.choice(["gradient", "stripes", "checker", "blobs", "dots"])
    c1, c2 = _muted(rng), _muted(rng)
    coords = np.arange(size, dtype=np.float32) / size
    y, x = coords[:, None], coords[None, :]  # (size, 1) and (1, size): broadcast to (size, size)
    angle = rng.uniform(0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    if kind == "gradient":
        t = (along - along.min()) / (along.max() - along.min() + 1e-9)
    elif kind == "stripes":
        t = 0.5 + 0.5 * np.sin(2 * math.pi * along * rng.uniform(3, 9))
    elif kind == "checker":
        k = int(rng.integers(3, 9))
        t = ((np.floor(x * k) + np.floor(y * k)) % 2) * 0.8
    elif kind == "blobs":  # smooth noise: a small random grid upsampled bicubically
        k = int(rng.integers(3, 7))
        small = Image.fromarray((rng.uniform(size=(k, k)) * 255).astype(np.uint8))
        t = np.asarray(small.resize((size, size), Image.BICUBIC), dtype=np.float64) / 255
    else:  # dots: many small discs of the second colour, drawn as a mask
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        for _ in range(int(rng.integers(15, 40))):
            px, py, pr = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.01, 0.04) * size]
            draw.ellipse([px - pr, py - pr, px + pr, py + pr], fill=255)
        t = np.asarray(mask, dtype=np.float32) / 255
    t = np.broadcast_to(t, (size, size)).astype(np.float32)[..., None]
    img = c1.astype(np.float32) * (1 - t) + c2.astype(np.float32) * t
    img += 6 * rng.standard_normal(img.shape, dtype=np.float32)  # sensor-like grain
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: Box, rgb: tuple[int, int, int]) -> None:
    """Fill ``shape`` in ``box`` with ``rgb`` and a darker outline."""
    outline = tuple(int(v * 0.45) for v in rgb)
    width = max(1, round((box[2] - box[0]) / 20))
    if shape == "circle":
        draw.ellipse(box, fill=rgb, outline=outline, width=width)
    else:
        draw.polygon(polygon(shape, box), fill=rgb, outline=outline, width=width)


def draw_shapes(shapes: list[tuple[str, str, Box]], rng: np.random.Generator, size: int) -> Image.Image:
    """A ``size x size`` RGB image: a textured background, then each ``(shape, colour, box)`` in order.

    Each shape's colour is its base colour in :data:`COLOURS` jittered by up to 18 levels per
    channel, so that no class has one exact colour.
    """
    img = Image.fromarray(background(rng, size))
    draw = ImageDraw.Draw(img)
    for shape, colour, box in shapes:
        base = np.array(COLOURS[colour])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-18, 19, size=3), 0, 255))
        draw_shape(draw, shape, box, rgb)
    return img


def shape_classification_set(
    n_per_class: int, image_size: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One shape per image, random colour, size and place, on a textured background.

    Returns images ``(N, image_size, image_size, 3)`` uint8, labels ``(N,)`` int64 with
    ``N = n_per_class * len(SHAPES)``, and the class names (``SHAPES``). Classes are
    interleaved (0, 1, 2, ..., 0, 1, ...) so any prefix is balanced. Image ``i`` depends
    only on ``(seed, i)``.
    """
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    n = n_per_class * len(SHAPES)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64) % len(SHAPES)
    for i in range(n):
        rng = np.random.default_rng([seed, i, 7])
        side = image_size * rng.uniform(0.3, 0.6)
        cx, cy = rng.uniform(side / 2 + 1, image_size - side / 2 - 1, size=2)
        box = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]
        colour = str(rng.choice(list(COLOURS)))
        images[i] = np.asarray(draw_shapes([(SHAPES[labels[i]], colour, box)], rng, image_size))
    return images, labels, list(SHAPES)
