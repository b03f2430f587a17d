"""Caption datasets in their real formats, read into one normalised ``CaptionData``.

``load_dataset(path)`` takes a dataset folder or one annotation file and detects:

========================  =================================================================
format                    files
========================  =================================================================
``flickr8k_original``     ``Flickr8k.token.txt`` (``name.jpg#n<TAB>caption``) and the split
                          files ``Flickr_8k.{train,dev,test}Images.txt``; images in
                          ``Flicker8k_Dataset/`` (sic). Holds a bogus id
                          ``2258277193_586949ec62.jpg.1`` with no image: dropped.
``flickr8k_kaggle``       ``captions.txt``, header ``image,caption``, commas inside captions
                          (quoted or not); images in ``Images/``. The synthetic dataset too.
``flickr30k_kaggle``      ``results.csv``, separator ``|``, header
                          ``image_name| comment_number| comment`` with leading spaces; a row
                          lacks its second separator (``2199200615.jpg| 4 A dog runs ...``):
                          repaired; images in ``flickr30k_images/flickr30k_images/``.
``coco``                  ``captions_train2014.json``, ``captions_val2017.json``, ... read with
                          pycocotools; images in ``train2014/``, ``val2017/``, ...
``karpathy``              ``dataset_flickr8k.json`` / ``dataset_flickr30k.json`` /
                          ``dataset_coco.json``: ``images[].split``, ``filepath``,
                          ``filename``, ``sentences[].raw``; ``restval`` counts as train.
========================  =================================================================

In a folder, the caption file gives the captions and a split file (Flickr8k's split files
or a Karpathy JSON of the same dataset) gives the split; without one, a deterministic
80/10/10 split by file-name hash is made and reported. Every dropped or repaired row is
recorded in ``CaptionData.report`` with its file, line and text; caption rows whose image
file is missing are dropped and listed; full datasets are checked against their known
sizes (Flickr8k 8,091 images / 40,455 captions, ...).

The parsers are written by hand (csv and json from the standard library, pycocotools for
COCO) because each format has quirks that notebook 07 shows and ``pandas.read_csv``
would silently mangle (the missing ``|`` separator, for one).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from course_utils.files import read_json

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")

# Known sizes of the full datasets: (images, captions) and Karpathy (train, val, test).
KNOWN_SIZES = {
    "flickr8k": {"images": 8091, "captions": 40455},
    "flickr30k": {"images": 31783, "captions": 158915},
    "coco_train2014": {"images": 82783, "captions": 414113},
    "coco_val2014": {"images": 40504, "captions": 202654},
    "coco_train2017": {"images": 118287, "captions": 591753},
    "coco_val2017": {"images": 5000, "captions": 25014},
}
KARPATHY_SPLITS = {
    "flickr8k": (6000, 1000, 1000),
    "flickr30k": (29000, 1014, 1000),
    "coco": (113287, 5000, 5000),
}
FULL_THRESHOLD = 0.9  # a dataset with at least 90% of the known image count is meant to be full

# Where each dataset keeps its images, relative to the folder of its caption file.
IMAGE_DIR_CANDIDATES = (
    "Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k_images/flickr30k_images",
    "flickr30k_images", "flickr30k-images", "../Flicker8k_Dataset", "../Flickr8k_Dataset", "../Images",
    "../flickr30k_images", ".", "..",
)  # fmt: skip


class DatasetFormatError(ValueError):
    """An annotation file that cannot be read; the message names the file (and line)."""


# --------------------------------------------------------------------------- the result
@dataclass
class Issue:
    """One dropped or repaired row: where it is, what it says, and why."""

    where: str  # "results.csv:19999"
    row: str  # the offending text, shortened
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}: {self.row!r}"


@dataclass
class Report:
    """What loading dropped, repaired, could not find, and how it compares to known sizes."""

    dropped: list[Issue] = field(default_factory=list)
    repaired: list[Issue] = field(default_factory=list)
    missing_images: list[str] = field(default_factory=list)  # images named by captions, not on disk
    notes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # known-size checks that passed
    problems: list[str] = field(default_factory=list)  # known-size checks that failed

    def drop(self, where: str, row: str, reason: str) -> None:
        self.dropped.append(Issue(where, row.strip()[:160], reason))

    def repair(self, where: str, row: str, reason: str) -> None:
        self.repaired.append(Issue(where, row.strip()[:160], reason))

    def lines(self, limit: int = 5) -> list[str]:
        """Counts, then up to ``limit`` offending rows of each kind."""
        out = [
            f"dropped_rows: {len(self.dropped)}",
            f"repaired_rows: {len(self.repaired)}",
            f"missing_images: {len(self.missing_images)}",
        ]
        out += [f"  dropped {i}" for i in self.dropped[:limit]]
        out += [f"  repaired {i}" for i in self.repaired[:limit]]
        out += [f"  missing image {name}" for name in self.missing_images[:limit]]
        more = max(0, len(self.dropped) - limit) + max(0, len(self.repaired) - limit)
        more += max(0, len(self.missing_images) - limit)
        if more:
            out.append(f"  ... and {more} more")
        out += [f"note: {n}" for n in self.notes]
        out += [f"check: {c}" for c in self.checks]
        out += [f"problem: {p}" for p in self.problems]
        return out


@dataclass
class CaptionData:
    """A caption dataset, whatever its source format.

    ``captions``: image key -> raw captions; the key is the image's path relative to
    ``image_dir`` (its file name for Flickr, ``val2014/COCO_val2014_...jpg`` for COCO).
    ``split``: image key -> ``"train"``, ``"val"`` or ``"test"`` (images in no split are absent).
    """

    name: str
    format: str
    image_dir: Path
    captions: dict[str, list[str]]
    split: dict[str, str]
    report: Report = field(default_factory=Report)
    source: Optional[Path] = None  # the annotation file read

    def images(self, split: Optional[str] = None) -> list[str]:
        """Sorted image keys of ``split`` (``"train"``, ``"val"``, ``"test"``), or all with ``None``."""
        if split is None:
            return sorted(self.captions)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        return sorted(k for k, s in self.split.items() if s == split and k in self.captions)

    def image_path(self, key: str) -> Path:
        return self.image_dir / key

    def num_captions(self, split: Optional[str] = None) -> int:
        return sum(len(self.captions[k]) for k in self.images(split))

    def summary(self) -> list[str]:
        """One figure per line, ``key: value``: what ``python -m course_utils data inspect`` prints."""
        n = len(self.captions)
        per = [len(c) for c in self.captions.values()] or [0]
        lines = [
            f"format: {self.format}",
            f"name: {self.name}",
            f"image_dir: {self.image_dir}",
            f"images: {n}",
            f"captions: {sum(per)}",
            f"captions_per_image: {sum(per) / max(n, 1):.2f} (min {min(per)}, max {max(per)})",
        ]
        lines += [f"{s}: {len(self.images(s))}" for s in SPLITS]
        unsplit = n - sum(len(self.images(s)) for s in SPLITS)
        if unsplit:
            lines.append(f"unsplit: {unsplit}")
        return lines + self.report.lines()


# --------------------------------------------------------------------------- helpers
def _is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({err})") from None


def _add(captions: dict[str, list[str]], key: str, caption: str) -> None:
    captions.setdefault(key, []).append(caption)


def hash_split(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """A stable split for an image without one: the same file always lands in the same split."""
    h = int(hashlib.md5(os.path.basename(key).encode("utf-8")).hexdigest()[:8], 16) / 16**8
    if h < fractions[0]:
        return "train"
    return "val" if h < fractions[0] + fractions[1] else "test"


# --------------------------------------------------------------------------- parsers
def read_flickr8k_token(path: Path, report: Report) -> dict[str, list[str]]:
    """``Flickr8k.token.txt``: ``1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress ...``."""
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        key, tab, caption = line.partition("\t")
        name, hash_, num = key.strip().rpartition("#")
        if not tab or not hash_ or not num.isdigit():
            report.drop(where, line, "not 'name.jpg#n<TAB>caption'")
        elif not _is_image_name(name):
            report.drop(where, line, f"image id {name!r} is not an image file name")
        elif not caption.strip():
            report.drop(where, line, "empty caption")
        else:
            _add(captions, name, caption.strip())
    return captions


def read_split_files(folder: Path, report: Report) -> dict[str, str]:
    """Flickr8k's ``Flickr_8k.trainImages.txt`` / ``devImages`` / ``testImages``: one name per line."""
    split: dict[str, str] = {}
    for part, s in (("train", "train"), ("dev", "val"), ("test", "test")):
        path = folder / f"Flickr_8k.{part}Images.txt"
        if not path.is_file():
            continue
        for n, line in enumerate(_read_lines(path), start=1):
            name = line.strip()
            if not name:
                continue
            if not _is_image_name(name):
                report.drop(f"{path.name}:{n}", line, "not an image file name")
            elif name in split and split[name] != s:
                report.drop(f"{path.name}:{n}", line, f"already in the {split[name]} split")
            else:
                split[name] = s
    return split


def read_kaggle_captions(path: Path, report: Report) -> dict[str, list[str]]:
    """Kaggle Flickr8k ``captions.txt``: header ``image,caption``, then ``name.jpg,caption``.

    The image name never holds a comma, so each line splits at its first comma; the
    caption may hold more commas, and is CSV-quoted (``"a dog, a cat"``) or not.
    """
    lines = _read_lines(path)
    if not lines or [h.strip().lower() for h in lines[0].split(",")] != ["image", "caption"]:
        head = lines[0][:80] if lines else "(empty file)"
        raise DatasetFormatError(f"{path}: expected the header 'image,caption', got {head!r}")
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        name, comma, caption = line.partition(",")
        name, caption = name.strip(), caption.strip()
        if caption.startswith('"'):
            try:
                caption = next(csv.reader([caption]))[0]
            except (csv.Error, IndexError):
                report.drop(where, line, "badly quoted caption")
                continue
            if not caption.strip():
                report.drop(where, line, "empty caption")
                continue
        if not comma or not _is_image_name(name):
            report.drop(where, line, "not 'name.jpg,caption'")
        elif not caption:
            report.drop(where, line, "empty caption")
        else:
            _add(captions, name, caption.strip())
    return captions


_NUM_THEN_TEXT = re.compile(r"^\s*(\d+)\s+(\S.*)$")


def read_flickr30k_results(path: Path, report: Report) -> dict[str, list[str]]:
    """Kaggle Flickr30k ``results.csv``: ``image_name| comment_number| comment``, spaces after ``|``.

    A row such as ``2199200615.jpg| 4 A dog runs across the grass .`` lacks its second
    separator: the number and the caption are split apart again (reported as repaired).
    """
    lines = _read_lines(path)
    if not lines or [h.strip() for h in lines[0].split("|")] != ["image_name", "comment_number", "comment"]:
        head = lines[0][:80] if lines else "(empty file)"
        raise DatasetFormatError(f"{path}: expected the header 'image_name| comment_number| comment', got {head!r}")
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) == 2 and _NUM_THEN_TEXT.match(parts[1]):
            num, text = _NUM_THEN_TEXT.match(parts[1]).groups()
            parts = [parts[0], num, text]
            report.repair(where, line, "missing '|' between comment_number and comment")
        if len(parts) != 3 or not _is_image_name(parts[0]) or not parts[1].isdigit():
            report.drop(where, line, "not 'image_name| comment_number| comment'")
        elif not parts[2]:
            report.drop(where, line, "empty caption")
        else:
            _add(captions, parts[0], parts[2])
    return captions


def read_coco(path: Path, report: Report) -> tuple[dict[str, list[str]], str]:
    """COCO ``captions_*.json`` through pycocotools; keys ``<subset>/<file_name>``, e.g. ``val2014/...``.

    Returns the captions and the subset name (``train2014``, ``val2017``, ...).
    """
    from pycocotools.coco import COCO

    data = read_json(path, DatasetFormatError)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data):
        raise DatasetFormatError(f"{path}: not a COCO annotation file (needs 'images' and 'annotations')")
    anns = data["annotations"]
    if anns and not all(isinstance(a, dict) and "caption" in a for a in anns[:50]):
        raise DatasetFormatError(f"{path}: COCO annotations without 'caption' (instances or keypoints file?)")
    m = re.search(r"(train|val|test)(\d{4})", path.name)
    subset = m.group(0) if m else path.stem
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints "creating index..."
        coco.createIndex()
    captions: dict[str, list[str]] = {}
    for img_id, img in coco.imgs.items():
        key = f"{subset}/{img['file_name']}"
        for ann in coco.imgToAnns.get(img_id, []):
            text = str(ann.get("caption", "")).strip()
            if text:
                _add(captions, key, text)
            else:
                report.drop(f"{path.name}:annotation {ann.get('id')}", str(ann), "empty caption")
    known_ids = set(coco.imgs)
    for ann in anns:
        if ann.get("image_id") not in known_ids:
            report.drop(f"{path.name}:annotation {ann.get('id')}", str(ann), "image_id not in 'images'")
    return captions, subset


def read_karpathy(path: Path, report: Report) -> tuple[dict[str, list[str]], dict[str, str], str]:
    """Karpathy ``dataset_*.json``: captions, split (``restval`` -> train) and the dataset name."""
    data = read_json(path, DatasetFormatError)
    if not (isinstance(data, dict) and isinstance(data.get("images"), list)):
        raise DatasetFormatError(f"{path}: not a Karpathy split file (needs an 'images' list)")
    captions: dict[str, list[str]] = {}
    split: dict[str, str] = {}
    restval = 0
    for n, img in enumerate(data["images"]):
        where = f"{path.name}:images[{n}]"
        if not isinstance(img, dict) or "filename" not in img or "split" not in img:
            report.drop(where, str(img), "image entry without 'filename' or 'split'")
            continue
        key = f"{img['filepath']}/{img['filename']}" if img.get("filepath") else img["filename"]
        s = {"restval": "train", "train": "train", "val": "val", "test": "test"}.get(img["split"])
        if s is None:
            report.drop(where, str(img)[:160], f"unknown split {img['split']!r}")
            continue
        restval += img["split"] == "restval"
        for sent in img.get("sentences", []):
            raw = str(sent.get("raw", "")).strip() if isinstance(sent, dict) else ""
            if raw:
                _add(captions, key, raw)
            else:
                report.drop(where, str(sent), "sentence without 'raw' text")
        if key in captions:
            split[key] = s
    if restval:
        report.notes.append(f"{restval} 'restval' images counted as train")
    name = str(data.get("dataset") or re.sub(r"^dataset_", "", path.stem))
    return captions, split, name


# --------------------------------------------------------------------------- detection
def detect_format(path: Path) -> str:
    """The format of an annotation file, from its name and first bytes; error if unknown."""
    name = path.name
    if name == "Flickr8k.token.txt" or name.endswith(".token.txt"):
        return "flickr8k_original"
    if path.suffix == ".json":
        if name.startswith("dataset_"):
            return "karpathy"
        if name.startswith("captions_"):
            return "coco"
        head = path.read_text(encoding="utf-8", errors="replace")[:4000]
        if '"sentences"' in head:
            return "karpathy"
        if '"annotations"' in head:
            return "coco"
    if path.suffix in (".txt", ".csv"):
        first = path.read_text(encoding="utf-8-sig", errors="replace").split("\n", 1)[0]
        if [h.strip().lower() for h in first.split(",")] == ["image", "caption"]:
            return "flickr8k_kaggle"
        if [h.strip() for h in first.split("|")] == ["image_name", "comment_number", "comment"]:
            return "flickr30k_kaggle"
        if re.match(r"^[^\t#]+#\d+\t", first):
            return "flickr8k_original"
    raise DatasetFormatError(
        f"{path}: unknown caption format (expected Flickr8k.token.txt, captions.txt, results.csv, "
        "captions_*.json or dataset_*.json)"
    )


CAPTION_FILES = ("Flickr8k.token.txt", "captions.txt", "results.csv")


def find_annotation_files(folder: Path, max_depth: int = 3) -> list[Path]:
    """Annotation files under ``folder`` (breadth first, at most ``max_depth`` levels, no image folders)."""
    found, level = [], [folder]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.is_dir() and not e.name.startswith("."):
                    nxt.append(Path(e.path))
                elif e.is_file() and (
                    e.name in CAPTION_FILES
                    or re.match(r"^(captions_\w+|dataset_\w+)\.json$", e.name)
                    or re.match(r"^Flickr_8k\.\w+Images\.txt$", e.name)
                ):
                    found.append(Path(e.path))
        level = nxt
    return found


def _pick_caption_file(files: list[Path], folder: Path) -> list[Path]:
    """The caption files to read in a folder: the first kind present, in order of preference."""
    for name in CAPTION_FILES:
        hits = [f for f in files if f.name == name]
        if hits:
            return hits[:1]
    coco = [f for f in files if f.name.startswith("captions_") and f.suffix == ".json"]
    if coco:
        return coco  # e.g. captions_train2014.json and captions_val2014.json together
    karpathy = [f for f in files if f.name.startswith("dataset_")]
    if karpathy:
        return karpathy[:1]
    raise DatasetFormatError(
        f"{folder}: no caption file found (looked for {', '.join(CAPTION_FILES)}, captions_*.json, dataset_*.json)"
    )


def _find_image_dir(ann_dir: Path, keys: list[str]) -> Optional[Path]:
    """The folder, near the annotation file, that holds the most of the first images named."""
    sample = keys[:25]
    best, best_hits = None, 0
    for rel in IMAGE_DIR_CANDIDATES:
        d = (ann_dir / rel).resolve()
        if d.is_dir():
            hits = sum((d / k).is_file() for k in sample)
            if hits > best_hits:
                best, best_hits = d, hits
    return best


# --------------------------------------------------------------------------- checks
def check_images(data: CaptionData) -> None:
    """Drop the images whose file is missing from ``data``; list them in ``report.missing_images``."""
    listed: dict[Path, set[str]] = {}  # one directory listing per folder: fast even for COCO
    for key in sorted(data.captions):
        path = data.image_dir / key
        if path.parent not in listed:
            listed[path.parent] = set(os.listdir(path.parent)) if path.parent.is_dir() else set()
        if path.name not in listed[path.parent]:
            n = len(data.captions.pop(key))
            data.split.pop(key, None)
            data.report.missing_images.append(key)
            if len(data.report.missing_images) <= 5:
                data.report.notes.append(f"{n} captions of {key} dropped: image file missing")
    if len(data.report.missing_images) > 5:
        data.report.notes.append(
            f"captions of {len(data.report.missing_images)} images dropped in all: image files missing"
        )


def check_known_sizes(data: CaptionData, key: Optional[str] = None) -> None:
    """Compare a full dataset with its published sizes; a subset (tests, fast mode) is only noted."""
    key = key or data.name
    n_img, n_cap = len(data.captions), data.num_captions()
    if data.format == "karpathy" and data.name in KARPATHY_SPLITS:
        want = KARPATHY_SPLITS[data.name]
        got = tuple(len(data.images(s)) for s in SPLITS)
        if sum(got) >= FULL_THRESHOLD * sum(want):
            msg = f"Karpathy {data.name} split train/val/test {got[0]}/{got[1]}/{got[2]}"
            if got == want:
                data.report.checks.append(msg + " as published")
            else:
                data.report.problems.append(msg + f", published {want[0]}/{want[1]}/{want[2]}")
        else:
            data.report.notes.append(f"subset of Karpathy {data.name}: {sum(got)} of {sum(want)} images")
        return
    if key not in KNOWN_SIZES:
        return
    want = KNOWN_SIZES[key]
    if n_img < FULL_THRESHOLD * want["images"]:
        data.report.notes.append(f"subset of {key}: {n_img} of {want['images']} images")
        return
    msg = f"{key}: {n_img} images, {n_cap} captions"
    if (n_img, n_cap) == (want["images"], want["captions"]):
        data.report.checks.append(msg + " as published")
    else:
        data.report.problems.append(msg + f"; published {want['images']} images, {want['captions']} captions")


# --------------------------------------------------------------------------- entry point
def _name_for(fmt: str, ann: Path) -> str:
    if fmt == "flickr8k_original":
        return "flickr8k"
    if fmt == "flickr30k_kaggle":
        return "flickr30k"
    if fmt == "flickr8k_kaggle":  # the synthetic dataset uses the same format
        return "synth" if (ann.parent / "synth_meta.json").is_file() else "flickr8k"
    return "coco"


def _read_one(ann: Path, report: Report) -> tuple[str, str, dict[str, list[str]], dict[str, str], str]:
    """(format, name, captions, split, size key) of one annotation file."""
    fmt = detect_format(ann)
    if fmt == "flickr8k_original":
        return fmt, "flickr8k", read_flickr8k_token(ann, report), read_split_files(ann.parent, report), "flickr8k"
    if fmt == "flickr8k_kaggle":
        name = _name_for(fmt, ann)
        return fmt, name, read_kaggle_captions(ann, report), {}, name
    if fmt == "flickr30k_kaggle":
        return fmt, "flickr30k", read_flickr30k_results(ann, report), {}, "flickr30k"
    if fmt == "coco":
        caps, subset = read_coco(ann, report)
        s = {"train": "train", "val": "val", "test": "test"}.get(re.sub(r"\d+$", "", subset), "train")
        return fmt, "coco", caps, {k: s for k in caps}, f"coco_{subset}"
    caps, split, name = read_karpathy(ann, report)
    return fmt, name, caps, split, name


def _karpathy_split_for(name: str, files: list[Path], report: Report) -> dict[str, str]:
    """The split of ``name`` from a Karpathy JSON among ``files`` (keyed by base file name)."""
    for f in files:
        if f.name in (f"dataset_{name}.json",):
            _, split, _ = read_karpathy(f, Report())
            report.notes.append(f"split from {f.name}")
            return {os.path.basename(k): s for k, s in split.items()}
    return {}


def load_dataset(path: Union[str, Path], check_files: bool = True) -> CaptionData:
    """Read a dataset folder or annotation file, whatever its format, into a ``CaptionData``.

    ``check_files=True`` drops (and reports) captions whose image file is missing, when the
    image folder is found. Raises ``DatasetFormatError`` (a ``ValueError``) naming the file
    for anything unreadable, ``FileNotFoundError`` for a missing path.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    report = Report()
    files = find_annotation_files(path) if path.is_dir() else [path]
    anns = _pick_caption_file(files, path) if path.is_dir() else [path]
    captions: dict[str, list[str]] = {}
    split: dict[str, str] = {}
    size_keys = []
    for ann in anns:
        fmt, name, caps, spl, size_key = _read_one(ann, report)
        for k, v in caps.items():
            captions.setdefault(k, []).extend(v)
        split.update(spl)
        size_keys.append(size_key)
    if not captions:
        raise DatasetFormatError(f"{anns[0]}: no caption rows could be read ({len(report.dropped)} rows dropped)")
    ann = anns[0]
    if fmt in ("flickr8k_kaggle", "flickr30k_kaggle") and not split:
        siblings = files if path.is_dir() else find_annotation_files(ann.parent, max_depth=1)
        by_name = _karpathy_split_for(name, siblings, report)
        split = {k: by_name[os.path.basename(k)] for k in captions if os.path.basename(k) in by_name}
    if fmt == "flickr8k_original" and not split:
        report.notes.append(f"no Flickr_8k.*Images.txt split files next to {ann.name}")
    if not split:
        split = {k: hash_split(k) for k in captions}
        report.notes.append("no split file: deterministic 80/10/10 split by file-name hash")

    keys = sorted(captions)
    image_dir = _find_image_dir(ann.parent, keys)
    data = CaptionData(name, fmt, image_dir or ann.parent, captions, split, report, source=ann)
    if image_dir is None:
        _no_image_dir(ann, keys, report)
        data.image_dir = ann.parent.parent if ann.parent.name == "annotations" else ann.parent
    elif check_files:
        check_images(data)
    unsplit = [k for k in data.captions if k not in data.split]
    if unsplit:
        report.notes.append(f"{len(unsplit)} images are in no split (kept, but not in train/val/test)")
    if len(size_keys) == 1:
        check_known_sizes(data, size_keys[0])
    return data


def _no_image_dir(ann: Path, keys: list[str], report: Report) -> None:
    """No image folder holds the images named: fine for annotations alone, an error if one exists."""
    for rel in IMAGE_DIR_CANDIDATES:
        d = ann.parent / rel
        if rel not in (".", "..") and d.is_dir() and any(_is_image_name(n) for n in os.listdir(d)):
            raise DatasetFormatError(
                f"{ann}: none of the {len(keys)} images it names (e.g. {keys[0]}) is in the image folder {d}"
            )
    report.notes.append(f"no image folder found near {ann}; image files not checked")
