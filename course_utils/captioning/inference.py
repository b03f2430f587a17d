"""Captioning new images: load, encode, decode (notebook 10's caption app and the ``caption`` command).

Both go through :func:`caption_images`, which hands its batches to the evaluation's own
:func:`~course_utils.captioning.decoding.caption_batches`: an uploaded photo, an image
given on the command line and a test image of the dataset are captioned by one piece of
code (eval mode, the model's device, ``vocab.decode`` for the words).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn
from PIL import Image

from course_utils.captioning.decoding import CaptionResult, caption_batches
from course_utils.vision.image_io import eval_transform, load_image

ImageLike = Union[str, Path, Image.Image]


def require_encoder(model: nn.Module) -> None:
    """Refuse a captioner that reads cached features: new images need its image encoder."""
    if getattr(model, "encoder", None) is None:
        raise ValueError("this Captioner has no image encoder: it reads cached features (rebuild it with "
                         "an 'encoder' in its config, or load it with cli.caption.load_captioner)")  # fmt: skip


def _loaded_batches(
    images: Sequence[ImageLike], transform: Callable[[Image.Image], torch.Tensor], batch_size: int
) -> Iterator[tuple[torch.Tensor, list, list[str]]]:
    """``(images (batch, 3, H, W), references (none), names)`` per ``batch_size`` images, as
    an evaluation loader gives them; paths are read with ``load_image`` (``ImageError`` if unreadable)."""
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        pictures = [im if isinstance(im, Image.Image) else load_image(im) for im in chunk]
        names = [f"image {start + i}" if isinstance(im, Image.Image) else str(im) for i, im in enumerate(chunk)]
        yield torch.stack([transform(p) for p in pictures]), [[] for _ in chunk], names


def caption_images(
    model: nn.Module,
    vocab,
    images: Sequence[ImageLike],
    transform: Optional[Callable[[Image.Image], torch.Tensor]] = None,
    beam_size: int = 1,
    max_len: int = 20,
    batch_size: int = 32,
) -> list[CaptionResult]:
    """Caption each image (a path or an RGB PIL image) with a ``Captioner`` that has its encoder.

    ``transform``: PIL image -> ``(3, H, W)``, by default ``eval_transform`` at the size in the
    model's config (224 when it names none). Images are encoded ``batch_size`` at a time on the
    model's device; greedy decoding for ``beam_size == 1``, beam search otherwise. One
    :class:`~course_utils.captioning.decoding.CaptionResult` per image, on the CPU: ``words``
    (special tokens dropped) and ``alphas (len(words), num_pixels)`` (None without attention).
    """
    require_encoder(model)
    if transform is None:
        transform = eval_transform(getattr(getattr(model, "config", None), "image_size", None) or 224)
    return caption_batches(model, _loaded_batches(images, transform, batch_size), vocab, beam_size, max_len)
