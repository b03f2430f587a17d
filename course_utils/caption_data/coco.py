"""COCO caption files (through pycocotools) and the Karpathy split files."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

from course_utils.caption_data.records import DatasetFormatError, Report, add, read_json


def read_coco(path: Path, report: Report) -> tuple[dict[str, list[str]], str]:
    """COCO ``captions_*.json`` through pycocotools; keys ``<subset>/<file_name>``, e.g. ``val2014/...``.

    Returns the captions and the subset name (``train2014``, ``val2017``, ...).
    """
    from pycocotools.coco import COCO

    data = read_json(path)
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
                add(captions, key, text)
            else:
                report.drop(f"{path.name}:annotation {ann.get('id')}", str(ann), "empty caption")
    known_ids = set(coco.imgs)
    for ann in anns:
        if ann.get("image_id") not in known_ids:
            report.drop(f"{path.name}:annotation {ann.get('id')}", str(ann), "image_id not in 'images'")
    return captions, subset


def read_karpathy(path: Path, report: Report) -> tuple[dict[str, list[str]], dict[str, str], str]:
    """Karpathy ``dataset_*.json``: captions, split (``restval`` -> train) and the dataset name."""
    data = read_json(path)
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
                add(captions, key, raw)
            else:
                report.drop(where, str(sent), "sentence without 'raw' text")
        if key in captions:
            split[key] = s
    if restval:
        report.notes.append(f"{restval} 'restval' images counted as train")
    name = str(data.get("dataset") or re.sub(r"^dataset_", "", path.stem))
    return captions, split, name


