"""Finding and downloading the real caption datasets.

* On **Kaggle**, datasets added to a notebook are mounted read-only under
  ``/kaggle/input`` (e.g. ``/kaggle/input/flickr8k`` for ``adityajn105/flickr8k``);
  ``locate(name)`` finds them there, or under the kit's data root, by their caption file.
* On **Colab** (or anywhere with internet), ``fetch(name, root)`` downloads the archives
  with resume (an interrupted download continues with an HTTP ``Range`` request),
  extracts them safely (no member may land outside the target folder: no ``../``, no
  absolute path, no link) and atomically (into a staging folder, then moved), and
  verifies the result by loading it and comparing with the known sizes.
* **Offline**, every failure is one ``FetchError`` line; ``get_dataset`` prints it and
  returns ``None`` so the notebook carries on with the synthetic dataset.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, Union
from urllib.parse import urlparse

from tqdm.auto import tqdm

from course_utils.caption_data.formats import detect_format, find_annotation_files, load_dataset
from course_utils.caption_data.records import DatasetFormatError

KAGGLE_INPUT = Path("/kaggle/input")

# Archives per dataset (public, no login). Flickr30k has no direct link: use Kaggle.
URLS = {
    "flickr8k": [
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip",
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip",
    ],
    "karpathy": ["https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip"],
    "coco2014": [
        "http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
        "http://images.cocodataset.org/zips/val2014.zip",
        "http://images.cocodataset.org/zips/train2014.zip",
    ],
    "coco2017": [
        "http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
        "http://images.cocodataset.org/zips/val2017.zip",
        "http://images.cocodataset.org/zips/train2017.zip",
    ],
}
KAGGLE_DATASETS = {  # what to add in Kaggle's "Add data" panel
    "flickr8k": "adityajn105/flickr8k",
    "flickr30k": "hsankesara/flickr-image-dataset",
    "coco2017": "awsaf49/coco-2017-dataset",
}

Opener = Callable[..., object]  # urllib.request.urlopen or a test double


class FetchError(RuntimeError):
    """Locating, downloading, extracting or verifying failed; the message is one line."""


# --------------------------------------------------------------------------- locating
def dataset_name_of(ann: Path) -> Optional[str]:
    """``flickr8k`` / ``flickr30k`` / ``coco`` / ``karpathy`` / ``synth`` for an annotation file, or None."""
    try:
        fmt = detect_format(ann)
    except (DatasetFormatError, OSError):
        return None
    if fmt == "flickr8k_kaggle" and (ann.parent / "synth_meta.json").is_file():
        return "synth"
    return {"flickr8k_original": "flickr8k", "flickr8k_kaggle": "flickr8k", "flickr30k_kaggle": "flickr30k",
            "coco": "coco", "karpathy": "karpathy"}[fmt]  # fmt: skip


def locate(name: str, roots: Optional[list[Path]] = None, max_depth: int = 4) -> Optional[Path]:
    """The folder holding dataset ``name``'s caption file under ``roots`` (default: /kaggle/input)."""
    want = "coco" if name.startswith("coco") else name
    for root in roots if roots is not None else [KAGGLE_INPUT]:
        if not Path(root).is_dir():
            continue
        for ann in find_annotation_files(Path(root), max_depth=max_depth):
            if ann.name.startswith("Flickr_8k."):
                continue  # split files, not captions
            if dataset_name_of(ann) == want:
                return ann.parent.parent if ann.parent.name == "annotations" else ann.parent
    return None


# --------------------------------------------------------------------------- downloading
def download(url: str, dest: Union[str, Path], opener: Opener = urllib.request.urlopen, timeout: float = 30,
             progress: bool = True) -> Path:  # fmt: skip
    """Download ``url`` to ``dest``, resuming a previous partial download (``dest.part``).

    The bytes go to ``dest.part`` and are moved to ``dest`` once their count matches the
    server's ``Content-Length``; an existing ``dest`` is kept as is.
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    host = urlparse(url).netloc or url
    try:
        response = opener(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # range not satisfiable: the part file is already complete
            os.replace(part, dest)
            return dest
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise FetchError(f"cannot reach {host} ({reason}); offline? use the synthetic dataset") from None
    with response:
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        if status != 206:  # the server ignored the range: start again
            have = 0
        total = have + int(length) if length is not None else None
        with open(part, "ab" if have else "wb") as f, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                           desc=dest.name, disable=not progress) as bar:  # fmt: skip
            try:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    bar.update(len(chunk))
            except OSError as err:
                msg = f"{url}: download interrupted at {f.tell()} bytes ({err}); run again to resume"
                raise FetchError(msg) from None
    size = part.stat().st_size
    if total is not None and size != total:
        raise FetchError(f"{url}: got {size} bytes, expected {total}; run again to resume")
    os.replace(part, dest)
    return dest


# --------------------------------------------------------------------------- extracting
def _safe_member(name: str, archive: Path) -> PurePosixPath:
    """The member's relative path, or FetchError if it would land outside the target folder."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise FetchError(f"{archive}: refused, member {name!r} would be written outside the target folder")
    return p


def extract(archive: Union[str, Path], target: Union[str, Path]) -> Path:
    """Extract a zip or tar archive into ``target`` safely and atomically; return ``target``.

    Every member is checked before anything is written (absolute paths, ``..``, links and
    device files are refused). Extraction happens in a staging folder inside ``target``;
    each top-level entry is then moved into place with ``os.replace``.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    _safe_member(info.filename, archive)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise FetchError(f"{archive}: refused, member {info.filename!r} is a symbolic link")
                z.extractall(stage)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                members = t.getmembers()
                for m in members:
                    _safe_member(m.name, archive)
                    if not (m.isfile() or m.isdir()):
                        raise FetchError(f"{archive}: refused, member {m.name!r} is a link or a device")
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4 checks members itself too
                    t.extractall(stage, members=members, filter="data")
                else:
                    t.extractall(stage, members=members)
        else:
            raise FetchError(f"{archive}: not a zip or tar archive (broken download? delete it and run again)")
        for entry in sorted(stage.iterdir()):
            dest = target / entry.name
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            os.replace(entry, dest)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise FetchError(f"{archive}: broken archive ({err}); delete it and run again") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- the whole job
def verify(folder: Path) -> list[str]:
    """Load the dataset in ``folder``; return its known-size problems (empty when all is well)."""
    try:
        data = load_dataset(folder)
    except (DatasetFormatError, FileNotFoundError) as err:
        raise FetchError(f"{folder}: not a usable dataset after extraction ({err})") from None
    return data.report.problems


def fetch(name: str, root: Union[str, Path], opener: Opener = urllib.request.urlopen,
          urls: Optional[dict[str, list[str]]] = None, progress: bool = True) -> Path:  # fmt: skip
    """Download, extract and verify dataset ``name`` under ``root / name``; return that folder."""
    urls = URLS if urls is None else urls
    if name not in urls:
        hint = f"; on Kaggle add the dataset {KAGGLE_DATASETS[name]}" if name in KAGGLE_DATASETS else ""
        raise FetchError(f"no direct download for {name!r} (choose from {', '.join(urls)}){hint}")
    root = Path(root)
    folder = root / name
    for url in urls[name]:
        archive = download(url, root / "downloads" / Path(urlparse(url).path).name, opener=opener, progress=progress)
        extract(archive, folder)
    if name != "karpathy":
        problems = verify(folder)
        if problems:
            raise FetchError(f"{folder}: {'; '.join(problems)}")
    return folder


def get_dataset(name: str, root: Union[str, Path], allow_download: Optional[bool] = None,
                opener: Opener = urllib.request.urlopen) -> Optional[Path]:  # fmt: skip
    """Folder of dataset ``name``: found under /kaggle/input or ``root``, else downloaded.

    ``allow_download=None`` downloads on Colab only (a laptop may not want 1 GB).
    Returns ``None`` after printing one line when the dataset cannot be had, so the
    caller falls back to the synthetic dataset.
    """
    from course_utils.env import detect_platform

    found = locate(name, [KAGGLE_INPUT, Path(root)])
    if found:
        return found
    if allow_download is None:
        allow_download = detect_platform() == "colab"
    if not allow_download:
        hint = f" (on Kaggle: Add data > {KAGGLE_DATASETS[name]})" if name in KAGGLE_DATASETS else ""
        print(f"{name}: not found under {KAGGLE_INPUT} or {root}{hint}; using the synthetic dataset")
        return None
    try:
        return fetch(name, root, opener=opener)
    except FetchError as err:
        print(f"{name}: {err}; using the synthetic dataset")
        return None
