"""Flickr8k and Flickr30k caption files, in their real formats, quirks included.

* ``Flickr8k.token.txt`` (or ``Flickr8k.lemma.token.txt``): ``name.jpg#n<TAB>caption``;
  split files ``Flickr_8k.{train,dev,test}Images.txt``;
* Kaggle Flickr8k ``captions.txt``: header ``image,caption``, commas inside captions;
* Kaggle Flickr30k ``results.csv``: ``image_name| comment_number| comment``.

Written by hand (not ``pandas.read_csv``) because each quirk must be repaired or
reported row by row, and pandas would silently mangle them.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from course_utils.caption_data.records import DatasetFormatError, Report, add, is_image_name, read_lines

SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}  # fmt: skip
_SPACE_NOT_TAB = re.compile(r"^(\S+#\d+) +(\S.*)$")  # "name.jpg#0 A dog ..." in some copies


def read_flickr8k_token(path: Path, report: Report) -> dict[str, list[str]]:
    """``Flickr8k.token.txt``: ``1000268201_693b08cb0e.jpg#0<TAB>A child in a pink dress ...``.

    Some copies separate a few ids from their caption with spaces instead of the TAB: those
    rows are split at the first space after ``#n`` and reported as repaired.
    """
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{n}"
        key, tab, caption = line.partition("\t")
        repaired = not tab and _SPACE_NOT_TAB.match(line.strip())
        if repaired:
            key, tab, caption = repaired.group(1), "\t", repaired.group(2)
            report.repair(where, line, "a space instead of the TAB between 'name.jpg#n' and the caption")
        name, hash_, num = key.strip().rpartition("#")
        if not tab or not hash_ or not num.isdigit():
            report.drop(where, line, "not 'name.jpg#n<TAB>caption'")
        elif not is_image_name(name):
            report.drop(where, line, f"image id {name!r} is not an image file name")
        elif not caption.strip():
            report.drop(where, line, "empty caption")
        else:
            add(captions, name, caption.strip())
    return captions


def read_split_files(folder: Path, report: Report) -> dict[str, str]:
    """Flickr8k's ``Flickr_8k.trainImages.txt`` / ``devImages`` / ``testImages``: one name per line.

    When some of the three files are present and others not, each missing one is recorded in
    ``report.missing_splits`` and ``report.problems`` (not read as an empty split).
    """
    split: dict[str, str] = {}
    present = {s: folder / name for s, name in SPLIT_FILES.items() if (folder / name).is_file()}
    for s, name in SPLIT_FILES.items():
        if present and s not in present:
            report.missing_splits[s] = name
            report.problems.append(f"split file {name} is missing: no {s} split (its images are in no split)")
    for s, path in present.items():
        for n, line in enumerate(read_lines(path), start=1):
            name = line.strip()
            if not name:
                continue
            if not is_image_name(name):
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
    lines = read_lines(path)
    top = next((i for i, line in enumerate(lines) if line.strip()), len(lines))  # blank lines before the header
    if top == len(lines) or [h.strip().lower() for h in lines[top].split(",")] != ["image", "caption"]:
        head = lines[top][:80] if top < len(lines) else "(empty file)"
        raise DatasetFormatError(f"{path}: expected the header 'image,caption' on line {top + 1}, got {head!r}")
    if top:
        report.notes.append(f"{path.name}: {top} blank line(s) before the header skipped")
    captions: dict[str, list[str]] = {}
    for n, line in enumerate(lines[top + 1 :], start=top + 2):
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
        if not comma or not is_image_name(name):
            report.drop(where, line, "not 'name.jpg,caption'")
        elif not caption:
            report.drop(where, line, "empty caption")
        else:
            add(captions, name, caption.strip())
    return captions


_NUM_THEN_TEXT = re.compile(r"^\s*(\d+)\s+(\S.*)$")


def read_flickr30k_results(path: Path, report: Report) -> dict[str, list[str]]:
    """Kaggle Flickr30k ``results.csv``: ``image_name| comment_number| comment``, spaces after ``|``.

    A row such as ``2199200615.jpg| 4 A dog runs across the grass .`` lacks its second
    separator: the number and the caption are split apart again (reported as repaired).
    """
    lines = read_lines(path)
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
        if len(parts) != 3 or not is_image_name(parts[0]) or not parts[1].isdigit():
            report.drop(where, line, "not 'image_name| comment_number| comment'")
        elif not parts[2]:
            report.drop(where, line, "empty caption")
        else:
            add(captions, parts[0], parts[2])
    return captions


