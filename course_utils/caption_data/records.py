"""The shared types of the caption loaders: ``CaptionData``, its ``Report``, the errors.

Every loader (``flickr.py``, ``coco.py``) reads its files into plain dicts and records
each dropped or repaired row in a ``Report``; ``formats.load_dataset`` assembles them into
one ``CaptionData``, whatever the source format. The small readers here (text, JSON, a
Git LFS pointer check) are shared by all of them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from course_utils import files

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")


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
    problems: list[str] = field(default_factory=list)  # known-size checks that failed, missing split files
    missing_splits: dict[str, str] = field(default_factory=dict)  # split -> the file that should give it

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
        lines += [f"{s}: missing (no {self.report.missing_splits[s]})" if s in self.report.missing_splits
                  else f"{s}: {len(self.images(s))}" for s in SPLITS]  # fmt: skip
        unsplit = n - sum(len(self.images(s)) for s in SPLITS)
        if unsplit:
            lines.append(f"unsplit: {unsplit}")
        return lines + self.report.lines()


# --------------------------------------------------------------------------- helpers
def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def check_not_lfs_pointer(path: Path) -> None:
    """Refuse a Git LFS pointer (a clone without ``git lfs``): a 130-byte stand-in for the real file."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(LFS_POINTER))
    except OSError:
        return  # the reader that follows names the problem
    if head == LFS_POINTER:
        raise DatasetFormatError(f"{path}: this is a Git LFS pointer, not the data: fetch the real file "
                                 "('git lfs pull' in the clone, or download it again)")  # fmt: skip


def read_lines(path: Path) -> list[str]:
    check_not_lfs_pointer(path)
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise DatasetFormatError(f"{path}: not UTF-8 text ({err})") from None


def read_json(path: Path) -> object:
    """A dataset's JSON file; an LFS pointer or broken JSON is a one-line ``DatasetFormatError``."""
    check_not_lfs_pointer(path)
    return files.read_json(path, DatasetFormatError)


def add(captions: dict[str, list[str]], key: str, caption: str) -> None:
    captions.setdefault(key, []).append(caption)


def hash_split(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """A stable split for an image without one: the same file always lands in the same split."""
    h = int(hashlib.md5(os.path.basename(key).encode("utf-8")).hexdigest()[:8], 16) / 16**8
    if h < fractions[0]:
        return "train"
    return "val" if h < fractions[0] + fractions[1] else "test"


