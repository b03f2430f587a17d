"""The embedded captioning dataset: coloured shapes in spatial relations, offline.

Each image holds 1 to 3 shapes (circle, square, triangle, star, diamond, cross) of
distinct colours and shapes, small or large, placed on a 3 x 3 layout over a textured
background (gradient, stripes, checkerboard, blobs or dots, in random muted colours),
so that colour statistics alone cannot caption it. The scenes and their captions come
from ``course_utils.caption_data.scenes``, the drawing from ``course_utils.vision.shapes``
(notebook 04's shapes). Every image gets five differently worded captions in English or
French, e.g.

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

import csv
import io
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from course_utils.caption_data.scenes import DEFAULT_SIZE, Obj, captions_for, object_words, sample_scene
from course_utils.files import read_json
from course_utils.sequence.text import tokenize
from course_utils.vision.shapes import draw_shapes

VERSION = 2  # bump when the images or captions change, so old folders are regenerated
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, val, test
__all__ = ["DEFAULT_SIZE", "generate", "load_boxes", "render", "sample_captions"]


def render(objects: list[Obj], rng: np.random.Generator, image_size: int = DEFAULT_SIZE) -> Image.Image:
    """The RGB image of a scene; also rounds each object's box out to the pixels it covers."""
    img = draw_shapes([(o.shape, o.colour, o.box) for o in objects], rng, image_size)
    for obj in objects:
        x0, y0, x1, y1 = obj.box
        obj.box = [
            max(0, math.floor(x0)),
            max(0, math.floor(y0)),
            min(image_size, math.ceil(x1) + 1),
            min(image_size, math.ceil(y1) + 1),
        ]
    return img


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
    old = read_json(out / "synth_meta.json")
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
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object mapping image names to lists of boxes")
    for name, objs in data.items():
        for k, o in enumerate(objs):
            if not (isinstance(o, dict) and len(o.get("box", [])) == 4 and "words" in o):
                raise ValueError(f"{path}: image {name!r}, object {k} lacks a 4-number 'box' or 'words'")
    return data
