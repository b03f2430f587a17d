"""PyTorch datasets of captions and the collate functions that batch them.

* ``CaptionDataset``: one item per (image, caption) pair, for training:
  ``(image (3, H, W) float or features (num_pixels, encoder_dim), caption (length,) long)``.
* ``EvalDataset``: one item per image, with every reference caption, for evaluation:
  ``(image or features, references: list[list[str]], image_key)``.
* ``collate_captions`` pads captions with ``<pad>`` = 0 and returns their lengths;
  ``collate_eval`` stacks images and keeps references as lists.

The image side comes from one of three sources, fastest first: ``features`` (a
``FeatureCache`` or any mapping key -> ``(num_pixels, encoder_dim)``: the encoder ran
once, see ``cache.py``), ``store`` (an ``ImageStore`` of decoded, resized images) or
the image files themselves through ``load_image``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch
from PIL import Image
from torch.utils.data import Dataset

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
