"""PyTorch datasets of captions and the collate functions that batch them.

* ``CaptionDataset``: one item per (image, caption) pair, for training:
  ``(image (3, H, W) float or features (num_pixels, encoder_dim), caption (length,) long)``.
* ``EvalDataset``: one item per image, with every reference caption, for evaluation:
  ``(image or features, references: list[list[str]], image_key)``.
* ``collate_captions`` pads captions with ``<pad>`` = 0 and returns their lengths;
  ``collate_eval`` stacks images and keeps references as lists.
* ``LengthBucketSampler``: batches of captions of similar length, in a random order, so that
  padding to the longest caption of a batch costs little (``DataLoader(batch_sampler=...)``).

The image side comes from one of three sources, fastest first: ``features`` (a
``FeatureCache`` or any mapping key -> ``(num_pixels, encoder_dim)``: the encoder ran
once, see ``cache.py``), ``store`` (an ``ImageStore`` of decoded, resized images) or
the image files themselves through ``load_image``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from course_utils.caption_data.records import CaptionData
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary, pad_captions
from course_utils.vision.image_io import eval_transform, load_image

Transform = Callable[[Image.Image], torch.Tensor]


class _ImageSource:
    """Gets the model input of an image key: cached features, a stored image, or the file."""

    def __init__(self, data: CaptionData, transform: Optional[Transform], features: Any, store: Any):
        self.data, self.features, self.store = data, features, store
        self.transform = transform if transform is not None else eval_transform(224)

    def __call__(self, key: str) -> torch.Tensor:
        if self.features is not None:
            return torch.as_tensor(self.features[key]).float()  # (num_pixels, encoder_dim)
        if self.store is not None:
            return self.transform(Image.fromarray(self.store[key]))  # (3, H, W)
        return self.transform(load_image(self.data.image_path(key)))  # (3, H, W)


class CaptionDataset(Dataset):
    """Every (image, caption) pair of one split, captions as ids ``<start> w1 ... wn <end>``.

    ``max_len`` (tokens, without ``<start>``/``<end>``) truncates longer captions; ``None`` keeps all.
    Without ``transform``, images go through ``eval_transform(224)``. ``pairs``, ``keys`` and
    ``source`` are read by ``train.GroupedCaptions``.
    """

    def __init__(
        self,
        data: CaptionData,
        split: str,
        vocab: Vocabulary,
        transform: Optional[Transform] = None,
        features: Optional[Mapping[str, Any]] = None,
        store: Any = None,
        max_len: Optional[int] = None,
    ):
        self.keys = data.images(split)
        if not self.keys:
            raise ValueError(f"{data.name}: the {split!r} split holds no image")
        self.source = _ImageSource(data, transform, features, store)
        self.vocab = vocab
        self.pairs: list[tuple[int, list[int]]] = []  # (index into self.keys, caption ids)
        for i, key in enumerate(self.keys):
            for raw in data.captions[key]:
                tokens = tokenize(raw)[:max_len] if max_len else tokenize(raw)
                self.pairs.append((i, vocab.encode(tokens)))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        i, ids = self.pairs[idx]
        return self.source(self.keys[i]), torch.tensor(ids, dtype=torch.long)


class EvalDataset(Dataset):
    """One item per image of ``split``: ``(image or features, references, image_key)``.

    ``references`` holds every caption of the image, tokenised by ``text.tokenize``, the same
    policy the metrics use.
    """

    def __init__(
        self,
        data: CaptionData,
        split: str,
        transform: Optional[Transform] = None,
        features: Optional[Mapping[str, Any]] = None,
        store: Any = None,
    ):
        self.keys = data.images(split)
        if not self.keys:
            raise ValueError(f"{data.name}: the {split!r} split holds no image")
        self.source = _ImageSource(data, transform, features, store)
        self.references = [[tokenize(c) for c in data.captions[k]] for k in self.keys]
        self.raw_references = {k: list(data.captions[k]) for k in self.keys}  # as written, for the COCO protocol

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, list[list[str]], str]:
        return self.source(self.keys[idx]), self.references[idx], self.keys[idx]


def collate_captions(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Items of ``CaptionDataset`` -> ``images (batch, ...)``, ``captions (batch, max_len)``, ``lengths (batch,)``.

    ``lengths`` count ``<start>`` and ``<end>``; padded positions hold ``<pad>`` = 0.
    """
    images = torch.stack([b[0] for b in batch])
    captions, lengths = pad_captions([b[1] for b in batch])
    return images, captions, lengths


def collate_eval(batch: list[tuple[torch.Tensor, list[list[str]], str]]):
    """Items of ``EvalDataset`` -> ``images (batch, ...)``, ``references`` (list per image), ``keys``."""
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch], [b[2] for b in batch]


class LengthBucketSampler(Sampler):
    """Batches of item indices whose captions have similar lengths: ``DataLoader(data, batch_sampler=this)``.

    ``lengths[i]`` is the length of item ``i``'s caption. Each epoch (each ``iter``):

    1. shuffle all indices (``torch.randperm`` with ``generator``);
    2. cut the shuffled list into *pools* of ``pool * batch_size`` indices and sort each pool by
       length (a stable sort: equal lengths stay in their shuffled order);
    3. cut each sorted pool into batches of ``batch_size`` (only the very last batch may be smaller:
       every other pool holds a whole number of batches);
    4. yield the batches in a random order (``torch.randperm`` again), so that an epoch does not
       run from the shortest captions to the longest.

    Sorting inside pools rather than over the whole dataset keeps batches different from one
    epoch to the next. ``len`` is the number of batches of an epoch.
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, pool: int = 50, generator: Optional[torch.Generator] = None
    ):
        if batch_size < 1 or pool < 1:
            raise ValueError(f"batch_size and pool must be >= 1, got {batch_size} and {pool}")
        self.lengths = [int(n) for n in lengths]
        self.batch_size, self.pool, self.generator = batch_size, pool, generator

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(len(self.lengths), generator=self.generator).tolist()
        size = self.pool * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            sorted_pool = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches += [sorted_pool[k : k + self.batch_size] for k in range(0, len(sorted_pool), self.batch_size)]
        for i in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[i]

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)  # rounded up: the last batch may be smaller
