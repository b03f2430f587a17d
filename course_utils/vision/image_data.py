"""The images of the classifier (notebooks 04-05): load, split 70 / 15 / 15, augment, batch.

Follows the classifier project report: images resized to one
size, pixel values scaled to [0, 1], a stratified 70 / 15 / 15 split into train /
validation / test (:func:`load_image_set`, :func:`split_indices`), and augmentation on
the training set only: rotation, zoom, horizontal flip (:func:`image_transforms`).

Data sources (one setting, ``source``): ``"shapes"`` (the kit's synthetic shapes,
offline), ``"cifar10"`` (downloaded by torchvision), ``"sports"`` (the Kaggle
"sports-classification" set of the report, found under ``/kaggle/input``), or the path
of any image folder with one sub-folder per class. An unavailable source prints one
line and falls back to ``"shapes"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from course_utils.env import data_root as default_data_root
from course_utils.env import reachable
from course_utils.vision.image_io import ImageError, load_image
from course_utils.vision.shapes import shape_classification_set


@dataclass
class ImageSet:
    """A labelled image collection held in memory.

    ``images``: ``(N, H, W, 3)`` uint8; ``labels``: ``(N,)`` int64 in ``[0, num_classes)``;
    ``source``: where it came from; ``notes``: what was skipped or replaced, for the student.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    source: str
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


KAGGLE_INPUT = Path("/kaggle/input")  # where Kaggle mounts datasets (read-only)
CIFAR_HOST = ("www.cs.toronto.edu", 443)


def _resize(image: Image.Image, size: int) -> np.ndarray:
    """RGB ``(size, size, 3)`` uint8 array; the image is stretched to a square, as in the classifier project report."""
    return np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)


def _balanced_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of at most ``per_class`` random examples of every class, sorted."""
    rng = np.random.default_rng(seed)
    keep = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(keep))


def load_image_folder(root: Union[str, Path], image_size: int, per_class: int, seed: int = 0) -> ImageSet:
    """An image folder with one sub-folder per class (torchvision ``ImageFolder`` layout).

    Up to ``per_class`` random images per class are decoded and resized to ``image_size``;
    unreadable files are skipped (another file of the class is read instead) and
    counted in ``notes``, with the first 5 names.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    folder = ImageFolder(str(root))  # only lists files; nothing is decoded yet
    targets = np.asarray(folder.targets, dtype=np.int64)
    rng = np.random.default_rng(seed)
    images, labels, bad = [], [], []
    for c in range(len(folder.classes)):
        kept = 0
        for i in rng.permutation(np.flatnonzero(targets == c)):  # random files until per_class are read
            if kept == per_class:
                break
            path = folder.samples[i][0]
            try:
                images.append(_resize(load_image(path), image_size))  # the kit's safe loader: EXIF, modes
                labels.append(c)
                kept += 1
            except ImageError as err:  # truncated, corrupt or not an image; the message names the file
                bad.append(str(err))
    if not images:
        raise ValueError(f"image folder {root}: no readable image among {len(folder.samples)} files")
    notes = [f"skipped {len(bad)} unreadable file(s): " + "; ".join(bad[:5])] if bad else []
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), list(folder.classes), str(root), notes)


def load_cifar10(data_root: Union[str, Path], image_size: int, per_class: int, seed: int = 0) -> ImageSet:
    """CIFAR-10 (50,000 training images of 32 x 32, 10 classes) via torchvision.

    Downloaded once (170 MB) into ``data_root/cifar10``; raises ``OSError`` when it is
    neither there nor downloadable.
    """
    from torchvision.datasets import CIFAR10

    root = Path(data_root) / "cifar10"
    present = (root / "cifar-10-batches-py").is_dir()
    if not present and not reachable(*CIFAR_HOST):
        raise OSError(f"CIFAR-10 is not in {root} and {CIFAR_HOST[0]} is unreachable")
    data = CIFAR10(str(root), train=True, download=not present)
    labels = np.asarray(data.targets, dtype=np.int64)
    keep = _balanced_subset(labels, per_class, seed)
    images = data.data[keep]  # (n, 32, 32, 3) uint8
    if image_size != images.shape[1]:
        images = np.stack([_resize(Image.fromarray(im), image_size) for im in images])
    return ImageSet(images, labels[keep], list(data.classes), "cifar10")


def load_shapes(image_size: int, per_class: int, seed: int = 0) -> ImageSet:
    """The kit's offline default: one shape per image on a textured background (6 classes)."""
    images, labels, names = shape_classification_set(per_class, image_size=image_size, seed=seed)
    return ImageSet(images, labels, names, "shapes")


def find_sports_folder(kaggle_input: Optional[Path] = None) -> Optional[Path]:
    """The training folder of the classifier project report's sports-classification set if Kaggle mounted it, else None.

    The dataset has ``train/``, ``valid/`` and ``test/`` folders of 100 sport classes; the
    kit pools ``train/`` and makes its own 70 / 15 / 15 split, as the report did.
    """
    kaggle_input = kaggle_input or KAGGLE_INPUT
    if not kaggle_input.is_dir():
        return None
    for root in sorted(kaggle_input.glob("*sports*")) + sorted(kaggle_input.glob("*/*sports*")):
        if (root / "train").is_dir():
            return root / "train"
    return None


def load_image_set(
    source: str = "shapes",
    image_size: int = 64,
    per_class: int = 100,
    data_root: Union[str, Path, None] = None,
    seed: int = 0,
) -> ImageSet:
    """Images and labels from ``source``; falls back to ``"shapes"`` in one line if unavailable.

    ``source``: ``"shapes"``, ``"cifar10"``, ``"sports"`` or a folder path; ``data_root``
    (default: the kit's data folder) is where CIFAR-10 is downloaded. Every source
    returns the same :class:`ImageSet` (uint8 arrays of ``image_size``), so the rest of
    the notebook runs one code path whatever the data.
    """
    if source == "shapes":
        return load_shapes(image_size, per_class, seed)
    try:
        if source == "cifar10":
            return load_cifar10(data_root or default_data_root(), image_size, per_class, seed)
        if source == "sports":
            folder = find_sports_folder()
            if folder is None:
                raise OSError("not found under /kaggle/input (add the 'sports-classification' dataset)")
            return load_image_folder(folder, image_size, per_class, seed)
        return load_image_folder(source, image_size, per_class, seed)
    except (OSError, ValueError) as err:
        print(f"data source {source!r} unavailable ({err}); using the synthetic shapes instead")
        data = load_shapes(image_size, per_class, seed)
        data.notes.append(f"fallback from {source!r}: {err}")
        return data


def split_indices(
    labels: np.ndarray, fractions: tuple[float, float, float] = (0.70, 0.15, 0.15), seed: int = 0
) -> dict[str, np.ndarray]:
    """Stratified train / val / test indices (70 / 15 / 15 by default, as in the classifier project report).

    Stratified: every class keeps the same proportions in each part (scikit-learn's
    ``train_test_split`` with ``stratify``), so a small validation set still sees
    every class. Returns ``{"train": idx, "val": idx, "test": idx}``, each sorted.
    """
    labels = np.asarray(labels)
    if len(fractions) != 3 or not math.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    idx = np.arange(len(labels))
    train, rest = train_test_split(idx, train_size=fractions[0], stratify=labels, random_state=seed)
    val_share = fractions[1] / (fractions[1] + fractions[2])
    val, test = train_test_split(rest, train_size=val_share, stratify=labels[rest], random_state=seed)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def image_transforms(
    size: int, train: bool, mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None
) -> v2.Compose:
    """uint8 ``(3, H, W)`` tensor or PIL image -> float ``(3, size, size)``.

    Training adds the classifier project report's augmentation: rotation (up to 15 degrees), zoom (a random
    crop of 80-100 % of the area, resized back) and horizontal flips. Values are scaled
    to [0, 1]; with ``mean``/``std`` (ImageNet statistics for pretrained models) they
    are then standardised channel by channel.
    """
    steps: list = [v2.ToImage()]  # PIL images and tensors alike become (3, H, W) uint8 tensors
    if train:
        steps += [
            v2.RandomRotation(15),
            v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    else:
        steps += [v2.Resize((size, size), antialias=True)]
    steps += [v2.ToDtype(torch.float32, scale=True)]
    if mean is not None and std is not None:
        steps += [v2.Normalize(list(mean), list(std))]
    return v2.Compose(steps)


class ArrayDataset(Dataset):
    """Items ``(image (3, size, size) float, label int)`` from uint8 arrays ``(N, H, W, 3)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Optional[Callable] = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(np.ascontiguousarray(self.images[i])).permute(2, 0, 1)  # (3, H, W) uint8
        x = self.transform(x) if self.transform else x.float() / 255
        return x, int(self.labels[i])


def make_loaders(
    data: ImageSet,
    split: dict[str, np.ndarray],
    image_size: int,
    batch_size: int = 32,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    generator: Optional[torch.Generator] = None,
) -> dict[str, DataLoader]:
    """One DataLoader per split; augmentation and shuffling on ``train`` only."""
    loaders = {}
    for name, idx in split.items():
        train = name == "train"
        ds = ArrayDataset(data.images[idx], data.labels[idx], image_transforms(image_size, train, mean, std))
        loaders[name] = DataLoader(ds, batch_size=batch_size, shuffle=train, generator=generator if train else None)
    return loaders
