"""Compute once, read many times: encoder features and decoded images on disk.

A frozen encoder gives the same features for an image at every epoch, so running it
every epoch wastes most of the training time (ResNet-50 is ~4 GFLOPs per 224 px image;
the attention decoder is a fraction of that). ``FeatureCache`` runs it once over a split,
with a progress bar, and stores the grid features as float16 in a ``.npy`` file that is
memory-mapped when read: ``(num_images, num_pixels, encoder_dim)``, e.g. 6,000 Flickr8k
training images x 49 x 2048 x 2 bytes = 1.2 GB, read lazily, one row per item.

``ImageStore`` does the same for decoded, resized images ``(num_images, size, size, 3)``
uint8, for when the encoder is trained (or fine-tuned) and features cannot be cached:
epochs then skip JPEG decoding and resizing.

Each cache lives in a folder named by what it depends on: the encoder name, the image
size, the split and a fingerprint of the dataset (image keys and file sizes). Change any
of them and the name changes, so a stale cache is never reused; the old folders found
next to it are named in a warning. A feature cache also records a fingerprint of the
encoder's weights: a cache made with random weights (say, after a failed ImageNet
download) is rebuilt, not reused, once the pretrained weights are there.

Building overlaps the two halves of the work: ``DataLoader`` worker processes decode and
resize the next JPEGs while the main process runs the encoder on the current batch
(pinned memory on CUDA, so the copy to the GPU does not wait either). Everything a worker
receives is picklable (no lambda), so the ``spawn`` start method works too, and a loaded
cache sends workers its file name, not its memory-mapped array. Files are written under temporary names and moved
into place (``os.replace``) with ``meta.json`` last, so an interrupted run leaves a
folder without ``meta.json`` that is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from course_utils.basics.networks import evaluating
from course_utils.caption_data.records import CaptionData
from course_utils.vision.image_io import eval_transform, load_image


def dataset_fingerprint(data: CaptionData, keys: list[str]) -> str:
    """SHA-256 (hex) of the image keys and their file sizes: changes when the images change."""
    h = hashlib.sha256()
    for key in keys:
        path = data.image_path(key)
        size = path.stat().st_size if path.is_file() else -1
        h.update(f"{key}\t{size}\n".encode())
    return h.hexdigest()


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """SHA-256 (hex) of the encoder's weights and buffers: differs between random and pretrained weights."""
    h = hashlib.sha256()
    for name, tensor in encoder.state_dict().items():
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def default_workers() -> int:
    """Decoding processes for a build: every core but the one running the encoder, at most 4."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


class _Keyed(Dataset):
    """Images of ``keys`` through ``load`` (used by the builders' DataLoader)."""

    def __init__(self, keys: list[str], load: Callable[[str], object]):
        self.keys, self.load = keys, load

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int):
        return self.load(self.keys[i])


class _LoadTransformed:
    """``key -> transform(image)``: a class, not a lambda, so spawned workers can unpickle it."""

    def __init__(self, data: CaptionData, transform: Callable):
        self.data, self.transform = data, transform

    def __call__(self, key: str) -> torch.Tensor:
        return self.transform(load_image(self.data.image_path(key)))  # (3, H, W)


def image_batches(
    data: CaptionData,
    keys: list[str],
    transform: Callable,
    batch_size: int = 32,
    num_workers: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    multiprocessing_context: Optional[str] = None,
) -> DataLoader:
    """Batches ``(batch, 3, H, W)`` of the images of ``keys``, decoded by ``num_workers`` processes.

    ``num_workers`` None: :func:`default_workers`. On CUDA the batches are in pinned memory,
    so ``images.to(device, non_blocking=True)`` overlaps the copy with the GPU's work.
    """
    workers = default_workers() if num_workers is None else num_workers
    return DataLoader(_Keyed(keys, _LoadTransformed(data, transform)), batch_size=batch_size, num_workers=workers,
                      pin_memory=torch.device(device).type == "cuda",
                      multiprocessing_context=multiprocessing_context if workers else None,
                      prefetch_factor=4 if workers else None)  # fmt: skip


class _DiskArray:
    """One memory-mapped ``.npy`` array whose rows belong to image keys, plus ``meta.json``."""

    kind = "array"

    def __init__(self, root: Union[str, Path], data: CaptionData, split: Optional[str], name: str):
        self.data, self.split = data, split
        self.keys = data.images(split)
        if not self.keys:
            raise ValueError(f"{data.name}: no image in split {split!r}; nothing to cache")
        self.fingerprint = dataset_fingerprint(data, self.keys)
        self.prefix = f"{_slug(data.name)}-{split or 'all'}-{name}"
        self.dir = Path(root) / self.kind / f"{self.prefix}-{self.fingerprint[:16]}"
        self.row = {k: i for i, k in enumerate(self.keys)}
        self.array: Optional[np.ndarray] = None

    @property
    def array_path(self) -> Path:
        return self.dir / f"{self.kind}.npy"

    def expected_meta(self) -> dict:
        return {"fingerprint": self.fingerprint, "keys": self.keys}

    def built_meta(self) -> Optional[dict]:
        """``meta.json`` of a finished cache made from exactly these images, else None."""
        meta_path = self.dir / "meta.json"
        if not (meta_path.is_file() and self.array_path.is_file()):
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        return meta if all(meta.get(k) == v for k, v in self.expected_meta().items()) else None

    def is_built(self) -> bool:
        """True when the folder holds a finished cache made from exactly these images."""
        return self.built_meta() is not None

    def stale_folders(self) -> list[Path]:
        """Older caches of the same dataset, split and settings: never read, only reported."""
        parent = self.dir.parent
        if not parent.is_dir():
            return []
        return [p for p in sorted(parent.glob(f"{self.prefix}-*")) if p != self.dir and p.is_dir()]

    def load(self) -> _DiskArray:
        """Memory-map the array (read-only); raises if the cache is missing or stale."""
        if not self.is_built():
            raise FileNotFoundError(f"{self.dir}: no finished {self.kind} cache for these images; build() it")
        self.array = np.load(self.array_path, mmap_mode="r")
        if self.array.shape[0] != len(self.keys):
            raise ValueError(f"{self.array_path}: {self.array.shape[0]} rows for {len(self.keys)} images")
        return self

    def __getstate__(self) -> dict:
        """Pickled (for a DataLoader worker) without the array: the worker memory-maps the file itself."""
        return {**self.__dict__, "array": None}

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self.row

    def __getitem__(self, key: str) -> np.ndarray:
        if self.array is None:
            self.load()
        if key not in self.row:
            raise KeyError(f"{key!r} is not in this cache ({self.data.name}, split {self.split})")
        return np.asarray(self.array[self.row[key]])

    def _write(self, batches, dtype: type, progress: bool, **extra_meta) -> None:
        """Write the rows produced by ``batches`` (arrays ``(b, ...)``), then ``meta.json``."""
        for old in self.stale_folders():
            print(f"{self.kind}: ignoring stale cache {old.name} (dataset or settings changed)")
        tmp_dir = self.dir.with_name(self.dir.name + ".tmp")
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        out, row = None, 0
        bar = tqdm(total=len(self.keys), desc=f"{self.kind} {self.prefix}", disable=not progress)
        for batch in batches:
            batch = np.asarray(batch)
            if out is None:
                out = np.lib.format.open_memmap(tmp_dir / self.array_path.name, mode="w+", dtype=dtype,
                                                shape=(len(self.keys), *batch.shape[1:]))  # fmt: skip
            out[row : row + len(batch)] = batch
            row += len(batch)
            bar.update(len(batch))
        bar.close()
        if out is None or row != len(self.keys):
            raise RuntimeError(f"{self.kind}: wrote {row} rows for {len(self.keys)} images")
        out.flush()
        meta = {**self.expected_meta(), "shape": list(out.shape), "dataset": self.data.name, "split": self.split,
                **extra_meta}  # fmt: skip
        del out  # closes the memory map before the folder moves
        (tmp_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        if self.dir.exists():
            shutil.rmtree(self.dir)
        os.replace(tmp_dir, self.dir)


class FeatureCache(_DiskArray):
    """Encoder grid features of a split, float16 on disk: ``cache[key]`` -> ``(num_pixels, encoder_dim)``.

    >>> cache = FeatureCache(ENV.data_root / "cache", data, "train", "resnet50", image_size=224)
    >>> cache.build(encoder, device=ENV.device)   # once; skipped when already built
    >>> CaptionDataset(data, "train", vocab, features=cache)
    """

    kind = "features"

    def __init__(self, root: Union[str, Path], data: CaptionData, split: Optional[str], encoder_name: str,
                 image_size: int = 224):  # fmt: skip
        self.encoder_name, self.image_size = encoder_name, image_size
        super().__init__(root, data, split, f"{_slug(encoder_name)}-{image_size}px")

    def expected_meta(self) -> dict:
        return {**super().expected_meta(), "encoder": self.encoder_name, "image_size": self.image_size}

    @torch.no_grad()
    def build(
        self,
        encoder: torch.nn.Module,
        device: Union[str, torch.device] = "cpu",
        batch_size: int = 32,
        transform: Optional[Callable] = None,
        num_workers: Optional[int] = None,
        progress: bool = True,
        force: bool = False,
        multiprocessing_context: Optional[str] = None,
    ) -> FeatureCache:
        """Run ``encoder`` once over the split (skipped if built with these weights); return the loaded cache.

        ``encoder(images (batch, 3, H, W))`` may return ``(batch, num_pixels, encoder_dim)``
        or a map ``(batch, encoder_dim, h, w)``, flattened here to ``(batch, h * w, encoder_dim)``.
        ``num_workers``: decoding processes (None: :func:`default_workers`); ``multiprocessing_context``:
        their start method (None: the platform's; ``"spawn"`` works too).
        """
        weights = encoder_fingerprint(encoder)
        meta = self.built_meta()
        if meta is not None and not force:
            if meta.get("weights") == weights:
                print(f"features: reusing {self.dir}")
                return self.load()
            print(f"features: {self.dir.name} was made with other encoder weights; rebuilding it")
        transform = transform or eval_transform(self.image_size)
        loader = image_batches(self.data, self.keys, transform, batch_size, num_workers, device,
                               multiprocessing_context)  # fmt: skip
        encoder.to(device)

        def batches():
            for images in loader:  # (batch, 3, H, W), decoded by the workers while the encoder ran
                feats = encoder(images.to(device, non_blocking=True))
                if feats.dim() == 4:  # (batch, encoder_dim, h, w) -> (batch, h * w, encoder_dim)
                    feats = feats.flatten(2).transpose(1, 2)
                yield feats.float().cpu().numpy()

        with evaluating(encoder):
            self._write(batches(), np.float16, progress, weights=weights)
        return self.load()

    def __getitem__(self, key: str) -> np.ndarray:
        """Features of one image, ``(num_pixels, encoder_dim)`` float32."""
        # torch converts float16 to float32 several times faster than numpy's astype: 1 against
        # 12.5 ms for a batch of 32 ResNet-50 grids (``bench``), where the decoder step takes 160 ms.
        row = np.array(super().__getitem__(key))  # a writable copy of the read-only memory-mapped row
        return torch.from_numpy(row).float().numpy()


class ImageStore(_DiskArray):
    """Decoded images of a split, resized once: ``store[key]`` -> ``(size, size, 3)`` uint8."""

    kind = "images"

    def __init__(self, root: Union[str, Path], data: CaptionData, split: Optional[str], size: int = 224):
        self.size = size
        super().__init__(root, data, split, f"{size}px")

    def expected_meta(self) -> dict:
        return {**super().expected_meta(), "size": self.size}

    def _decode(self, key: str) -> np.ndarray:
        img = load_image(self.data.image_path(key)).resize((self.size, self.size), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)  # (size, size, 3)

    def build(
        self, num_workers: int = 0, batch_size: int = 64, progress: bool = True, force: bool = False
    ) -> ImageStore:
        """Decode and resize every image of the split once (skipped if built); return the loaded store."""
        if self.is_built() and not force:
            return self.load()
        loader = DataLoader(_Keyed(self.keys, self._decode), batch_size=batch_size, num_workers=num_workers,
                            collate_fn=np.stack)  # fmt: skip
        self._write(iter(loader), np.uint8, progress)
        return self.load()
