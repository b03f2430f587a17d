"""Checks of a loaded dataset: image files present, sizes as published."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from course_utils.caption_data.records import SPLITS, CaptionData

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
    missing = len(data.report.missing_images)
    if missing > 5:
        data.report.notes.append(f"captions of {missing} images dropped in all: image files missing")
    if missing:
        named = missing + len(data.captions)
        data.report.notes.append(f"{len(data.captions)} of the {named} images named are in {data.image_dir}; "
                                 f"{missing} missing (e.g. {', '.join(data.report.missing_images[:3])})")


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


