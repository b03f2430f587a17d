"""The embedded captioning dataset: coloured shapes in spatial relations, offline.

Each image holds 1 to 3 shapes (circle, square, triangle, star, diamond, cross) of
distinct colours and shapes, small or large, placed on a 3 x 3 layout over a textured
background (gradient, stripes, checkerboard, blobs or dots, in random muted colours),
so that colour statistics alone cannot caption it. Every image gets five differently
worded captions in English or French, e.g.

* ``a red circle to the left of a large blue square``
* ``un cercle rouge à gauche d'un grand carré bleu``

and a ground-truth box per object with the caption words naming it (its shape noun
and colour adjective), so attention can be scored: does the attention peak for the
word ``circle`` fall inside the circle's box?

``generate(out_dir)`` writes the dataset in the formats of the real ones, so the real
loaders (``course_utils.caption_data.formats``) read it::

    out_dir/Images/synth_00000.jpg ...   the images
    out_dir/captions.txt                 Kaggle Flickr8k format: header "image,caption"
    out_dir/dataset_synth.json           Karpathy split format (train / val / test)
    out_dir/boxes.json                   objects per image: box, shape, colour, size, words
    out_dir/synth_meta.json              the arguments, to skip regeneration

Everything is deterministic for a seed; image ``i`` depends only on ``(seed, i)``,
so the first 100 images are the same whatever ``n_images`` is. Command line:
``python -m course_utils data synth --out DIR [--images N] [--lang en|fr] [--seed S]``.
"""

from __future__ import annotations

import colorsys
import csv
import io
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageDraw

from course_utils.sequence.text import tokenize

VERSION = 2  # bump when the images or captions change, so old folders are regenerated
DEFAULT_SIZE = 96  # pixels; a 7 x 7 encoder grid then has ~14-pixel cells
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test

SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross"]
COLOURS = {  # base RGB; each object gets a small random jitter around it
    "red": (215, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 215, 40),
    "purple": (150, 50, 190),
    "orange": (245, 135, 25),
}
SIZES = {"small": 0.19, "large": 0.28}  # object side as a fraction of the image side

# French: noun and gender of each shape, colour adjective (masculine, feminine).
FR_SHAPES = {
    "circle": ("cercle", "m"),
    "square": ("carré", "m"),
    "triangle": ("triangle", "m"),
    "star": ("étoile", "f"),
    "diamond": ("losange", "m"),
    "cross": ("croix", "f"),
}
FR_COLOURS = {
    "red": ("rouge", "rouge"),
    "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"),
    "yellow": ("jaune", "jaune"),
    "purple": ("violet", "violette"),
    "orange": ("orange", "orange"),
}
FR_SIZES = {"small": ("petit", "petite"), "large": ("grand", "grande")}
EN_SIZES = {"small": ["small", "little"], "large": ["large", "big"]}

# Position of a lone object on the 3 x 3 layout, indexed [row][col].
EN_PLACES = [
    ["in the top left corner", "at the top", "in the top right corner"],
    ["on the left", "in the centre", "on the right"],
    ["in the bottom left corner", "at the bottom", "in the bottom right corner"],
]
FR_PLACES = [
    ["en haut à gauche", "en haut", "en haut à droite"],
    ["à gauche", "au centre", "à droite"],
    ["en bas à gauche", "en bas", "en bas à droite"],
]
# Relation of A to B; French phrases end in "de", contracted with the article below.
EN_RELATIONS = {
    "left": ["to the left of", "left of"],
    "right": ["to the right of", "right of"],
    "above": ["above", "over"],
    "below": ["below", "under"],
}
FR_RELATIONS = {"left": ["à gauche de"], "right": ["à droite de"], "above": ["au-dessus de"], "below": ["sous"]}
INVERSE = {"left": "right", "right": "left", "above": "below", "below": "above"}


# --------------------------------------------------------------------------- scenes
@dataclass
class Obj:
    """One shape of a scene. ``box`` is ``[x0, y0, x1, y1]`` in pixels."""

    shape: str
    colour: str
    size: str
    row: int
    col: int
    box: list[int]


def _layout(rng: np.random.Generator, n: int) -> list[tuple[int, int]]:
    """``n`` distinct cells of the 3 x 3 layout, in reading order, at least one pair in line."""
    while True:
        cells = sorted({(int(c) // 3, int(c) % 3) for c in rng.choice(9, size=n, replace=False)})
        if n == 1 or any(_relation(a, b) for i, a in enumerate(cells) for b in cells[i + 1 :]):
            return cells


def _relation(a: tuple[int, int], b: tuple[int, int]) -> str:
    """Where cell ``a`` is relative to cell ``b``: left/right/above/below, or "" if diagonal."""
    if a[0] == b[0]:
        return "left" if a[1] < b[1] else "right"
    if a[1] == b[1]:
        return "above" if a[0] < b[0] else "below"
    return ""


def _overlap(a: list[float], b: list[float], margin: float) -> bool:
    return a[0] < b[2] + margin and b[0] < a[2] + margin and a[1] < b[3] + margin and b[1] < a[3] + margin


def sample_scene(rng: np.random.Generator, image_size: int = DEFAULT_SIZE) -> list[Obj]:
    """1-3 objects with distinct shapes and colours; boxes in pixels of an ``image_size`` image."""
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.45, 0.30]))
    cells = _layout(rng, n)
    shapes = rng.choice(SHAPES, size=n, replace=False)
    colours = rng.choice(list(COLOURS), size=n, replace=False)
    sizes = rng.choice(list(SIZES), size=n)
    sides = [SIZES[s] * image_size * rng.uniform(0.92, 1.08) for s in sizes]
    s3 = image_size / 3
    for attempt in range(12):  # jitter positions inside their cells; no jitter as a last resort
        jitter = 0.04 * image_size if attempt < 11 else 0.0
        boxes = []
        for (row, col), side in zip(cells, sides):
            cx = (col + 0.5) * s3 + rng.uniform(-jitter, jitter)
            cy = (row + 0.5) * s3 + rng.uniform(-jitter, jitter)
            half = side / 2
            cx, cy = np.clip([cx, cy], half + 1, image_size - half - 1)
            boxes.append([cx - half, cy - half, cx + half, cy + half])
        if not any(_overlap(a, b, 2) for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
            break
    return [
        Obj(str(shapes[i]), str(colours[i]), str(sizes[i]), r, c, [float(v) for v in boxes[i]])
        for i, (r, c) in enumerate(cells)
    ]


# --------------------------------------------------------------------------- drawing
def _polygon(shape: str, box: list[float]) -> list[tuple[float, float]]:
    """Vertices of ``shape`` inscribed in ``box`` (x0, y0, x1, y1); the circle is handled apart."""
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


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list[float], rgb: tuple[int, int, int]) -> None:
    """Fill ``shape`` in ``box`` with ``rgb`` and a darker outline."""
    outline = tuple(int(v * 0.45) for v in rgb)
    width = max(1, round((box[2] - box[0]) / 20))
    if shape == "circle":
        draw.ellipse(box, fill=rgb, outline=outline, width=width)
    else:
        draw.polygon(_polygon(shape, box), fill=rgb, outline=outline, width=width)


def render(objects: list[Obj], rng: np.random.Generator, image_size: int = DEFAULT_SIZE) -> Image.Image:
    """The RGB image of a scene; also rounds each object's box to the pixels it covers."""
    img = Image.fromarray(background(rng, image_size))
    draw = ImageDraw.Draw(img)
    for obj in objects:
        base = np.array(COLOURS[obj.colour])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-18, 19, size=3), 0, 255))
        draw_shape(draw, obj.shape, obj.box, rgb)
        x0, y0, x1, y1 = obj.box
        obj.box = [
            max(0, math.floor(x0)),
            max(0, math.floor(y0)),
            min(image_size, math.ceil(x1) + 1),
            min(image_size, math.ceil(y1) + 1),
        ]
    return img


# --------------------------------------------------------------------------- captions
def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _en_np(o: Obj, rng: np.random.Generator, with_size: bool, article: bool = True) -> str:
    """English noun phrase: ``a red circle`` / ``a big orange star`` / ``an orange cross``."""
    words = ([_pick(rng, EN_SIZES[o.size])] if with_size else []) + [o.colour, o.shape]
    if not article:
        return " ".join(words)
    return ("an " if words[0][0] in "aeiou" else "a ") + " ".join(words)


def _fr_np(o: Obj, rng: np.random.Generator, with_size: bool, de: bool = False) -> str:
    """French noun phrase with agreement: ``un grand cercle rouge`` / ``une petite étoile verte``.

    ``de=True`` contracts it after a relation ending in "de": ``d'un cercle``.
    """
    noun, gender = FR_SHAPES[o.shape]
    f = gender == "f"
    colour = FR_COLOURS[o.colour][f]
    size = FR_SIZES[o.size][f] + " " if with_size else ""
    article = "une" if f else "un"
    return f"{'d' + chr(39) if de else ''}{article} {size}{noun} {colour}"


def _en_rel(a: Obj, b: Obj, rng, sa: bool, sb: bool) -> str:
    rel = _pick(rng, EN_RELATIONS[_relation((a.row, a.col), (b.row, b.col))])
    return f"{_en_np(a, rng, sa)} {rel} {_en_np(b, rng, sb)}"


def _fr_rel(a: Obj, b: Obj, rng, sa: bool, sb: bool) -> str:
    rel = _pick(rng, FR_RELATIONS[_relation((a.row, a.col), (b.row, b.col))])
    if rel.endswith(" de"):
        return f"{_fr_np(a, rng, sa)} {rel[:-3]} {_fr_np(b, rng, sb, de=True)}"
    return f"{_fr_np(a, rng, sa)} {rel} {_fr_np(b, rng, sb)}"


def _in_line(objects: list[Obj]) -> tuple[Obj, Obj, list[Obj]]:
    """The first pair of objects in line (same row or column) and the others."""
    for i, a in enumerate(objects):
        for b in objects[i + 1 :]:
            if _relation((a.row, a.col), (b.row, b.col)):
                return a, b, [o for o in objects if o is not a and o is not b]
    raise ValueError("no pair of objects in line")  # _layout guarantees one


def captions_for(objects: list[Obj], rng: np.random.Generator, lang: str = "en") -> list[str]:
    """Five captions of one scene, one per template of its object count, in random order."""
    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    en = lang == "en"
    NP, REL = (_en_np, _en_rel) if en else (_fr_np, _fr_rel)
    and_, there, shows = ("and", "there is", "the picture shows") if en else ("et", "il y a", "l'image montre")
    there_are = "there are" if en else "il y a"
    coin = lambda: bool(rng.integers(2))  # include a size adjective or not
    n = len(objects)
    if n == 1:
        o = objects[0]
        place = (EN_PLACES if en else FR_PLACES)[o.row][o.col]
        if en:
            caps = [
                f"{NP(o, rng, True)} {place}",
                f"{there} {NP(o, rng, coin())} {place}",
                f"{shows} {NP(o, rng, True)}",
                f"a single {_en_np(o, rng, coin(), article=False)} on a textured background",
                f"one shape : {NP(o, rng, coin())} {place}",
            ]
        else:
            alone = "seule" if FR_SHAPES[o.shape][1] == "f" else "seul"
            caps = [
                f"{NP(o, rng, True)} {place}",
                f"{there} {NP(o, rng, coin())} {place}",
                f"{shows} {NP(o, rng, True)}",
                f"{NP(o, rng, coin())} {alone} sur un fond texturé",
                f"une seule forme : {NP(o, rng, coin())} {place}",
            ]
    elif n == 2:
        a, b = objects
        caps = [
            REL(a, b, rng, coin(), coin()),
            REL(b, a, rng, coin(), coin()),
            f"{there_are} {NP(a, rng, True)} {and_} {NP(b, rng, True)}",
            f"{shows} {REL(a, b, rng, coin(), coin())}",
            f"{'two shapes' if en else 'deux formes'} : {NP(a, rng, coin())} {and_} {NP(b, rng, coin())}",
        ]
    else:
        a, b, (c,) = _in_line(objects)
        x, y, z = objects
        lst = lambda s: f"{NP(x, rng, s())} , {NP(y, rng, s())} {and_} {NP(z, rng, s())}"
        no = lambda: False
        caps = [
            lst(no),
            f"{'three shapes' if en else 'trois formes'} : {lst(coin)}",
            f"{REL(a, b, rng, coin(), coin())} {and_} {NP(c, rng, coin())}",
            f"{there_are} {lst(coin)}",
            f"{REL(b, a, rng, False, False)} {and_} {NP(c, rng, False)}",
        ]
    caps = [cap.replace(" ,", ",").replace(" :", ":") for cap in caps]
    order = rng.permutation(len(caps))
    return [caps[i] for i in order]


def object_words(o: Obj, lang: str = "en") -> list[str]:
    """The caption tokens that name ``o``: its shape noun and colour adjective."""
    if lang == "en":
        return [o.shape, o.colour]
    noun, gender = FR_SHAPES[o.shape]
    return tokenize(noun) + [FR_COLOURS[o.colour][gender == "f"]]


# --------------------------------------------------------------------------- public API
def _rngs(seed: int, i: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for the scene, its captions and its rendering of image ``i``."""
    return tuple(np.random.default_rng([seed, i, k]) for k in range(3))  # type: ignore[return-value]


def sample_captions(n: int, lang: str = "en", seed: int = 0) -> list[str]:
    """``n`` captions, one per scene, without drawing images (the language model of notebook 06).

    Caption ``i`` is one of the five captions of image ``i`` of ``generate(seed=seed)``.
    """
    out = []
    for i in range(n):
        scene_rng, caption_rng, _ = _rngs(seed, i)
        out.append(captions_for(sample_scene(scene_rng), caption_rng, lang)[0])
    return out


def _split_of(n: int, seed: int) -> list[str]:
    """``"train"``/``"val"``/``"test"`` per image index, 80/10/10, shuffled by ``seed``."""
    n_val = max(1, round(n * SPLIT_FRACTIONS[1])) if n >= 3 else 0
    n_test = max(1, round(n * SPLIT_FRACTIONS[2])) if n >= 3 else 0
    order = np.random.default_rng([seed, 10**6]).permutation(n)
    split = ["train"] * n
    for k, i in enumerate(order):
        if k < n_val:
            split[i] = "val"
        elif k < n_val + n_test:
            split[i] = "test"
    return split


def _write_json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def _is_synth_folder(path: Path) -> bool:
    return (path / "synth_meta.json").is_file()


def generate(
    out_dir: Union[str, Path],
    n_images: int = 2000,
    lang: str = "en",
    seed: int = 0,
    image_size: int = DEFAULT_SIZE,
    quality: int = 92,
) -> Path:
    """Write the synthetic dataset to ``out_dir`` and return ``out_dir`` as a Path.

    Nothing is done if ``out_dir`` already holds the dataset made with the same arguments.
    A folder holding another synthetic dataset is replaced; any other non-empty folder is
    refused (so a typo never deletes a user's data). The dataset is written to a temporary
    sibling folder and moved into place at the end, so an interrupted run leaves nothing
    half-written. ``quality`` is the JPEG quality (Flickr's images are JPEGs too).
    """
    out = Path(out_dir)
    if n_images < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if lang not in ("en", "fr"):
        raise ValueError(f"lang must be 'en' or 'fr', got {lang!r}")
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    meta = {"version": VERSION, "n_images": n_images, "lang": lang, "seed": seed, "image_size": image_size}
    if _same_dataset(out, meta):
        return out
    if out.exists() and not _is_synth_folder(out) and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no synthetic dataset; choose another folder")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_dataset(tmp, meta, quality)
        if out.exists():  # an older synthetic dataset (or an empty folder): move it aside first
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, trash / "old")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, out)
        except OSError:
            if not _same_dataset(out, meta):  # another process may have just written the same one
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _same_dataset(out: Path, meta: dict) -> bool:
    """True when ``out`` holds a finished synthetic dataset made with the arguments in ``meta``."""
    if not (_is_synth_folder(out) and (out / "Images").is_dir()):
        return False
    old = json.loads((out / "synth_meta.json").read_text(encoding="utf-8"))
    return {k: old.get(k) for k in meta} == meta


def _write_dataset(folder: Path, meta: dict, quality: int) -> None:
    """Images, captions.txt, dataset_synth.json, boxes.json, then synth_meta.json (last)."""
    n, lang, seed, size = meta["n_images"], meta["lang"], meta["seed"], meta["image_size"]
    (folder / "Images").mkdir()
    splits = _split_of(n, seed)
    rows, images, boxes = [], [], {}
    for i in range(n):
        scene_rng, caption_rng, render_rng = _rngs(seed, i)
        objects = sample_scene(scene_rng, size)
        caps = captions_for(objects, caption_rng, lang)
        name = f"synth_{i:05d}.jpg"
        render(objects, render_rng, size).save(folder / "Images" / name, quality=quality)
        rows += [(name, c) for c in caps]
        images.append(
            {  # like Karpathy's Flickr files: no "filepath", images found in Images/
                "filename": name,
                "imgid": i,
                "split": splits[i],
                "sentences": [{"raw": c, "tokens": tokenize(c), "imgid": i} for c in caps],
            }
        )
        boxes[name] = [
            {"box": o.box, "shape": o.shape, "colour": o.colour, "size": o.size, "words": object_words(o, lang)}
            for o in objects
        ]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")  # quotes the captions that hold commas
    writer.writerow(["image", "caption"])
    writer.writerows(rows)
    (folder / "captions.txt").write_text(buf.getvalue(), encoding="utf-8")
    _write_json(folder / "dataset_synth.json", {"dataset": "synth", "images": images})
    _write_json(folder / "boxes.json", boxes)
    _write_json(folder / "synth_meta.json", meta)


def load_boxes(path: Union[str, Path]) -> dict[str, list[dict]]:
    """``boxes.json`` (or the dataset folder holding it): image name -> its objects.

    Each object: ``{"box": [x0, y0, x1, y1] (pixels), "shape", "colour", "size", "words"}``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "boxes.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no boxes file (make one with course_utils.caption_data.synth.generate)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping image names to lists of boxes")
    for name, objs in data.items():
        for k, o in enumerate(objs):
            if not (isinstance(o, dict) and len(o.get("box", [])) == 4 and "words" in o):
                raise ValueError(f"{path}: image {name!r}, object {k} lacks a 4-number 'box' or 'words'")
    return data


def shape_classification_set(
    n_per_class: int, image_size: int = 64, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One shape per image, random colour, size and place, on a textured background.

    Returns images ``(N, image_size, image_size, 3)`` uint8, labels ``(N,)`` int64 with
    ``N = n_per_class * len(SHAPES)``, and the class names (``SHAPES``). Classes are
    interleaved (0, 1, 2, ..., 0, 1, ...) so any prefix is balanced.
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
        obj = Obj(SHAPES[labels[i]], str(rng.choice(list(COLOURS))), "large", 1, 1, box)
        images[i] = np.asarray(render([obj], rng, image_size))
    return images, labels, list(SHAPES)
