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

In a folder, the caption file gives the captions and a split file (Flickr8k's split files,
else a Karpathy JSON of the same dataset) gives the split; without one, a deterministic
80/10/10 split by file-name hash is made and reported. A split file that is missing while
the others are present is reported as missing (a problem), not counted as an empty split.
Every dropped or repaired row is recorded in ``CaptionData.report`` with its file, line and
text; caption rows whose image file is missing are dropped and listed; full datasets are checked against their known
sizes (Flickr8k 8,091 images / 40,455 captions, ...).

This module detects formats, finds the files and assembles the result; the readers are
in ``flickr.py`` and ``coco.py``, the types in ``records.py``, the checks in ``sizes.py``.
The parsers are written by hand (csv and json from the standard library, pycocotools for
COCO) because each format has quirks that notebook 07 shows and ``pandas.read_csv``
would silently mangle (the missing ``|`` separator, for one).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from course_utils.caption_data.coco import read_coco, read_karpathy
from course_utils.caption_data.flickr import (
    SPLIT_FILES,
    read_flickr8k_token,
    read_flickr30k_results,
    read_kaggle_captions,
    read_split_files,
)
from course_utils.caption_data.records import (
    CaptionData,
    DatasetFormatError,
    Report,
    check_not_lfs_pointer,
    hash_split,
    is_image_name,
)
from course_utils.caption_data.sizes import check_images, check_known_sizes

# Where each dataset keeps its images, relative to the folder of its caption file.
IMAGE_DIR_CANDIDATES = (
    "Images", "images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k_images/flickr30k_images",
    "flickr30k_images", "flickr30k-images", "../Flicker8k_Dataset", "../Flickr8k_Dataset", "../Images",
    "../flickr30k_images", ".", "..",
)  # fmt: skip
KAGGLE_HEADER = ["image", "caption"]
FLICKR30K_HEADER = ["image_name", "comment_number", "comment"]
CAPTION_FILES = ("Flickr8k.token.txt", "Flickr8k.lemma.token.txt", "captions.txt", "results.csv")


# --------------------------------------------------------------------------- detection
def _first_line(path: Path) -> tuple[int, str]:
    """(line number, text) of the first non-blank line, or (0, "") for a blank file."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                return n, line.rstrip("\n")
            if n > 1000:
                break
    return 0, ""


def _header_problem(path: Path, n: int, first: str) -> Optional[str]:
    """Why a ``captions.txt`` lacks its header, or None when it does not look like one."""
    name, comma, _ = first.partition(",")
    if not (path.name == "captions.txt" or (comma and is_image_name(name.strip()))):
        return None
    if n == 0:
        return f"{path}: an empty file; expected the header 'image,caption', then one 'name.jpg,caption' per line"
    if n > 1:
        return f"{path}: line 1 is blank where the header 'image,caption' should be"
    if comma and is_image_name(name.strip()):
        return f"{path}: the header line 'image,caption' is missing (line 1 is a caption row: {first[:80]!r}); add it"
    return f"{path}: expected the header 'image,caption' on line 1, got {first[:80]!r}"


def detect_format(path: Path) -> str:
    """The format of an annotation file, from its name and first bytes; error if unknown."""
    check_not_lfs_pointer(path)
    name = path.name
    if name.endswith(".token.txt"):  # Flickr8k.token.txt, Flickr8k.lemma.token.txt
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
        n, first = _first_line(path)
        if [h.strip().lower() for h in first.split(",")] == KAGGLE_HEADER:
            return "flickr8k_kaggle"
        if [h.strip() for h in first.split("|")] == FLICKR30K_HEADER:
            return "flickr30k_kaggle"
        if re.match(r"^[^\t#\s]+#\d+\s", first):
            return "flickr8k_original"
        problem = _header_problem(path, n, first)
        if problem:
            raise DatasetFormatError(problem)
    raise DatasetFormatError(
        f"{path}: unknown caption format (expected Flickr8k.token.txt, captions.txt, results.csv, "
        "captions_*.json or dataset_*.json)"
    )


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


def count_present(folder: Path, keys: list[str]) -> int:
    """How many of ``keys`` (paths relative to ``folder``) are files there: one listing per subfolder."""
    listed: dict[Path, set[str]] = {}
    found = 0
    for key in keys:
        path = folder / key
        if path.parent not in listed:
            try:
                listed[path.parent] = set(os.listdir(path.parent))
            except OSError:
                listed[path.parent] = set()
        found += path.name in listed[path.parent]
    return found


def _find_image_dir(ann_dir: Path, keys: list[str]) -> Optional[Path]:
    """The folder near the annotation file that holds the most of the images named (None: none of them).

    Every name is counted, not a sample: a folder holding only some of the images (a partial
    download, a subset) is still found, and the missing ones are then reported.
    """
    best, best_hits = None, 0
    for rel in IMAGE_DIR_CANDIDATES:
        d = (ann_dir / rel).resolve()
        if d.is_dir():
            hits = count_present(d, keys)
            if hits > best_hits:
                best, best_hits = d, hits
    return best


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
        if f.name == f"dataset_{name}.json":
            _, split, _ = read_karpathy(f, Report())
            report.notes.append(f"split from {f.name}")
            return {os.path.basename(k): s for k, s in split.items()}
    return {}


def _split_for(fmt: str, name: str, ann: Path, captions: dict[str, list[str]], split: dict[str, str],
               files: list[Path], report: Report) -> dict[str, str]:  # fmt: skip
    """The split of a Flickr caption file: its own split files, else a Karpathy JSON beside it, else by hash."""
    if fmt == "flickr8k_original" and split:
        return split
    if fmt in ("flickr8k_original", "flickr8k_kaggle", "flickr30k_kaggle"):
        by_name = _karpathy_split_for(name, files, report)
        split = {k: by_name[os.path.basename(k)] for k in captions if os.path.basename(k) in by_name}
    if fmt == "flickr8k_original" and not split and not report.missing_splits:
        report.notes.append(f"no {', '.join(SPLIT_FILES.values())} or dataset_{name}.json next to {ann.name}")
    if not split and not report.missing_splits:
        split = {k: hash_split(k) for k in captions}
        report.notes.append("no split file: deterministic 80/10/10 split by file-name hash")
    return split


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
    siblings = files if path.is_dir() else find_annotation_files(ann.parent, max_depth=1)
    split = _split_for(fmt, name, ann, captions, split, siblings, report)

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
        if rel not in (".", "..") and d.is_dir() and any(is_image_name(n) for n in os.listdir(d)):
            raise DatasetFormatError(
                f"{ann}: none of the {len(keys)} images it names (e.g. {keys[0]}) is in the image folder {d}"
            )
    report.notes.append(f"no image folder found near {ann}; image files not checked")
