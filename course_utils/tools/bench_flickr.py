"""A stand-in for Flickr8k, written offline in the real Kaggle layout (``bench --scale``).

No machine of ours reaches Flickr8k, so ``bench --scale`` times the real-data path on a
dataset with Flickr8k's *shape*: ``Images/`` with 8,091 JPEGs of 500 x 375 pixels and
``captions.txt`` (header ``image,caption``, five captions per image, names like
``1000268201_693b08cb0e.jpg``). What costs time in that path depends on that shape, not on
what the photos show:

* JPEG decoding depends on the pixel count and on how much detail the file holds: the
  images are smooth colour fields with some grain, about the file size of a photo;
* the training cost depends on the number of captions, their lengths and the vocabulary
  (the output layer): captions of 1-37 words, about 11 on average, words drawn from a
  Zipf law over 14,000 word forms (``p(rank) ~ 1 / (rank + 3) ** 1.45``), which gives,
  like Flickr8k, about 8,500 distinct words of which about 5,000 occur at least twice,
  and "a" as 14 % of all words. A few captions hold commas and possessives (``dog's``).

The most frequent words are real caption words so that printed samples read like
captions; the rare ones are made-up pronounceable words (``tavoreki``).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

import numpy as np
from PIL import Image

from course_utils.files import write_atomic

FLICKR8K_IMAGES = 8091
WIDTH, HEIGHT = 500, 375
WORD_FORMS, ZIPF_EXPONENT, ZIPF_OFFSET = 14000, 1.45, 3.0
HEAD = ("a in the on of is and dog with man while an are two white black boy woman girl wearing people water red "
        "at his through brown blue grass to her dogs young shirt down street running snow player front little "
        "standing one playing sitting field ball green jumping yellow holding three looking child orange group "
        "over air walking small runs out up into jacket by pink large beach for crowd person rock their from "
        "near hat next other bike riding children dressed dirt stands jumps climbing swimming men women stand "
        "behind background mountain along pool rides picture toy tree wall sand ocean camera city building").split()
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 syllables for the made-up rare words


def word_forms(n: int = WORD_FORMS) -> list[str]:
    """``n`` distinct lowercase words, most frequent first: real caption words, then made-up ones."""
    words, seen = list(HEAD), set(HEAD)
    rng = np.random.default_rng(1)
    while len(words) < n:
        word = "".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), size=int(rng.integers(2, 5))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words[:n]


def caption_lengths(rng: np.random.Generator, n: int) -> np.ndarray:
    """Words per caption, 1-37, about 11 on average (a gamma law, like Flickr8k's right-skewed lengths)."""
    lengths = np.clip(np.rint(rng.gamma(shape=6.0, scale=11.0 / 6.0, size=n)), 1, 37).astype(int)
    lengths[:2] = (1, 37)  # the extremes that real data has
    return lengths


def make_captions(n_captions: int, seed: int = 0) -> list[str]:
    """``n_captions`` captions as Flickr8k writes them: capital first letter, `` .`` at the end."""
    rng = np.random.default_rng(seed)
    words = np.array(word_forms())
    ranks = np.arange(len(words))
    p = 1.0 / (ranks + ZIPF_OFFSET) ** ZIPF_EXPONENT
    lengths = caption_lengths(rng, n_captions)
    drawn = iter(words[rng.choice(len(words), size=int(lengths.sum()), p=p / p.sum())])
    captions = []
    for length in lengths:
        tokens = [next(drawn) for _ in range(length)]
        roll = rng.random()
        if roll < 0.03 and length > 3:  # a few captions with a comma, a few with a possessive
            tokens[length // 2] += ","
        elif roll < 0.05 and length > 1:
            tokens[min(1, length - 1)] += "'s"
        captions.append((" ".join(tokens) + " .").capitalize())
    return captions


def image_name(i: int) -> str:
    """Flickr-style file names: ``<number>_<10 hex digits>.jpg``, sorted like the real ones are not."""
    digest = hashlib.sha1(str(i).encode()).hexdigest()[:10]
    return f"{1000268201 + i * 7919}_{digest}.jpg"


def write_image(path: Path, seed: int) -> None:
    """A 500 x 375 JPEG: a smooth colour field plus grain, about 60-100 KB like a photo."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize((WIDTH, HEIGHT), Image.BICUBIC), dtype=np.int16)
    grain = rng.integers(-24, 25, size=(HEIGHT, WIDTH, 1), dtype=np.int16)
    Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8)).save(path, quality=90)


def make_flickr8k_like(folder: Path, n_images: int = FLICKR8K_IMAGES, seed: int = 0) -> Path:
    """Write ``folder/Images/*.jpg`` and ``folder/captions.txt`` (once; kept when already complete)."""
    folder, images = Path(folder), Path(folder) / "Images"
    images.mkdir(parents=True, exist_ok=True)
    captions_path = folder / "captions.txt"
    if captions_path.is_file() and len(list(images.glob("*.jpg"))) == n_images:
        return folder
    names = [image_name(i) for i in range(n_images)]
    todo = [(images / name, seed * 1_000_003 + i) for i, name in enumerate(names) if not (images / name).is_file()]
    with multiprocessing.get_context("spawn").Pool(os.cpu_count() or 1) as pool:  # JPEG encoding on every core
        pool.starmap(write_image, todo, chunksize=64)
    captions = make_captions(5 * n_images, seed)
    rows = [f"{names[i // 5]},{c}" for i, c in enumerate(captions)]
    write_atomic(captions_path, "image,caption\n" + "\n".join(rows) + "\n")
    return folder


def first_images(source: Path, folder: Path, n_images: int) -> Path:
    """A dataset of the first ``n_images`` of ``source``: its own ``captions.txt``, the same ``Images/``."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (source / "captions.txt").read_text(encoding="utf-8").splitlines()
    write_atomic(folder / "captions.txt", "\n".join(lines[: 1 + 5 * n_images]) + "\n")
    link = folder / "Images"
    if not link.exists():
        link.symlink_to((source / "Images").resolve(), target_is_directory=True)
    return folder
