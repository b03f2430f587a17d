"""Batches for training a captioner: one item per caption pair, or one per image with its captions.

A ``CaptionDataset`` (``course_utils.caption_data.datasets``) has one item per (image,
caption) pair; :class:`GroupedCaptions` regroups them by image, so that the encoder of
an end-to-end model runs once per image.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch.utils.data import Dataset

from course_utils.caption_data.datasets import collate_captions, pad_captions


class GroupedCaptions(Dataset):
    """One item per image with its captions, from a ``CaptionDataset`` (which has one per pair).

    The encoder then runs once per image instead of once per caption, which is what makes
    end-to-end training affordable on a CPU. ``captions_per_image`` draws that many of the
    image's captions each time (None: all of them). Items: ``(image, [caption (length,), ...])``.
    """

    def __init__(self, pairs: Dataset, captions_per_image: Optional[int] = None) -> None:
        self.pairs, self.k = pairs, captions_per_image
        self.groups: dict[int, list[list[int]]] = {}
        for image_index, ids in pairs.pairs:
            self.groups.setdefault(image_index, []).append(ids)
        self.order = sorted(self.groups)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        image_index = self.order[i]
        caps = self.groups[image_index]
        if self.k is not None and self.k < len(caps):
            caps = [caps[j] for j in torch.randperm(len(caps))[: self.k].tolist()]
        image = self.pairs.source(self.pairs.keys[image_index])
        return image, [torch.tensor(c, dtype=torch.long) for c in caps]


def collate_grouped(batch: list[tuple[torch.Tensor, list[torch.Tensor]]]):
    """Items of :class:`GroupedCaptions` -> ``images (n_images, ...)``, ``captions (n_captions, max_len)``,
    ``lengths (n_captions,)`` and ``owners (n_captions,)``: the image row of each caption."""
    images = torch.stack([b[0] for b in batch])
    caps = [c for b in batch for c in b[1]]
    owners = torch.tensor([i for i, b in enumerate(batch) for _ in b[1]], dtype=torch.long)
    captions, lengths = pad_captions(caps)
    return images, captions, lengths, owners


def collate_for(dataset: Dataset) -> Callable:
    """The collate function of ``dataset``'s items (a ``Subset`` is looked through)."""
    grouped = isinstance(dataset, GroupedCaptions) or isinstance(getattr(dataset, "dataset", None), GroupedCaptions)
    return collate_grouped if grouped else collate_captions
