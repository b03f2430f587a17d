"""Random scenes of coloured shapes and their captions, in English or French (notebook 07).

A scene is 1 to 3 shapes (:data:`~course_utils.vision.shapes.SHAPES`) of distinct
colours and shapes, small or large, placed on a 3 x 3 layout with at least one pair in
line, so that a spatial relation can be named. :func:`captions_for` words it five ways,
e.g.

* ``a red circle to the left of a large blue square``
* ``un cercle rouge à gauche d'un grand carré bleu``

and :func:`object_words` lists the caption words that name each object (its shape noun
and colour adjective), so attention can be scored against the object's box.
``course_utils.caption_data.synth`` draws the scenes and writes the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from course_utils.sequence.text import tokenize
from course_utils.vision.shapes import COLOURS, SHAPES

DEFAULT_SIZE = 96  # pixels; a 7 x 7 encoder grid then has ~14-pixel cells
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
