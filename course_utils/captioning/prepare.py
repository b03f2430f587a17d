"""The data setup that chapters 08-10 share: dataset, vocabulary, and what the model reads.

Chapter 07 builds each piece by hand; chapters 08, 09 and 10 start with one call::

    prepared = prepare_caption_data(ENV.data_root, fast=ENV.fast, dataset="auto", lang="en", device=ENV.device)
    data, vocab = prepared.data, prepared.vocab
    CaptionDataset(data, "train", vocab, **prepared.inputs_for("train"))

What it does, in order:

1. **dataset**: ``"auto"`` takes a real Flickr8k if one is present (under /kaggle/input
   or ``data_root``, never downloaded), ``"flickr8k"``/``"coco2017"``/... the same and
   downloads on Colab; when none can be had, or with ``"synth"``, the synthetic dataset
   is generated into ``data_root / f"synth_{lang}"`` (the folder of chapter 07, so every
   chapter reads the same images).
2. **fast mode**: a real dataset keeps a regular sample of at most ``max_images`` images.
3. **vocabulary** from the training split only, words seen at least ``min_freq`` times.
4. **model inputs**, the same for every dataset (the design of the lab report *TP2 Attention*): a frozen
   ImageNet-pretrained CNN runs *once* per image into a ``FeatureCache`` per split, and
   only the decoder trains on the cached grids. The network is ResNet-50 when its
   ImageNet weights can be had, else EfficientNet-Lite0 with the weights a pip package
   installs (``course_utils.vision.pretrained``; one line says which). Only sizes differ:
   a real dataset's photos at 224 px; the synthetic 96-px scenes at ``SYNTH_IMAGE_SIZE``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from course_utils.caption_data import synth
from course_utils.caption_data.cache import FeatureCache
from course_utils.caption_data.fetch import get_dataset
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.records import CaptionData
from course_utils.captioning.encoders import build_encoder
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision.pretrained import BACKBONES

SPLITS = ("train", "val", "test")
NETWORK = "resnet50"  # the encoder of the lab report TP2 Attention; EfficientNet-Lite0 offline
REAL_IMAGE_SIZE = 224  # pixels per side of a photo, as ImageNet networks were trained
SYNTH_IMAGE_SIZE = 224  # pixels per side the synthetic 96-px scenes are resized to
GRID = 7  # regions per side: 7 x 7 = 49


@dataclasses.dataclass
class CaptionSetup:
    """A dataset ready for training: captions, vocabulary, and the cached encoder features per split.

    ``encoder``/``image_size``/``grid``/``encoder_dim``: the frozen network that made the
    features (``"resnet50"`` or, offline, ``"efficientnet_lite0"``), the image size it saw,
    and the ``grid x grid`` regions of ``encoder_dim`` numbers per image. ``caches``: split ->
    ``FeatureCache`` of ``(num_images, grid*grid, encoder_dim)`` features; ``backbone``: the
    frozen encoder itself (put it back in front of the decoder to caption new images).
    ``caches`` is empty when built with ``build_inputs=False``.
    """

    data: CaptionData
    folder: Path
    synthetic: bool  # the synthetic set, which knows where every object is (boxes.json)
    vocab: Vocabulary
    train_tokens: list[list[str]]  # one token list per training caption
    encoder: str
    image_size: int  # pixels per side
    grid: int
    encoder_dim: int  # numbers per region
    caches: dict[str, FeatureCache] = dataclasses.field(default_factory=dict)
    backbone: Optional[nn.Module] = None

    def inputs_for(self, split: str) -> dict:
        """Keyword arguments of CaptionDataset / EvalDataset: the split's cached features."""
        return dict(features=self.caches[split])

    def encoder_config(self) -> dict:
        """The encoder part of a model config: none (the model reads cached features), and the
        encoder that made them, so that ``python -m course_utils caption`` and the apps can rebuild it."""
        return dict(
            encoder=None,
            encoder_dim=self.encoder_dim,
            feature_encoder=self.encoder,
            grid=self.grid,
            image_size=self.image_size,
            trained_on=trained_on(self.data.name, self.synthetic),
        )

    def summary(self) -> list[str]:
        """Three lines: the dataset and its splits, the vocabulary, the encoder."""
        data, grid = self.data, self.grid
        splits = {s: len(data.images(s)) for s in SPLITS}
        return [
            f"{data.name}: {len(data.captions):,} images, {data.num_captions():,} captions, {splits}",
            f"vocabulary: {len(self.vocab)} words, e.g. {self.vocab.itos[:12]}",
            f"encoder: {self.encoder} (frozen, ImageNet), {grid} x {grid} = {grid * grid} regions of "
            f"{self.encoder_dim} numbers, images of {self.image_size} px",
        ]


def trained_on(name: str, synthetic: bool) -> str:
    """What a checkpoint's captions can talk about, said by the caption app and command."""
    if synthetic:
        return "synthetic shapes: photos get shape words; train on Flickr8k for photos"
    return f"{name} photos"


def build_caches(
    cache_root: Union[str, Path],
    data: CaptionData,
    backbone: nn.Module,
    image_size: int,
    device: Union[str, torch.device] = "cpu",
    progress: bool = True,
) -> dict[str, FeatureCache]:
    """Run the frozen ``backbone`` once over every split into a ``FeatureCache`` (reused when built).

    The cache folder is named after ``backbone.name`` (plus ``-random`` for random weights),
    the image size and the dataset, so a change of any of them builds a new one.
    """
    name = backbone.name + ("-random" if getattr(backbone, "weights", None) == "random" else "")
    return {
        s: FeatureCache(cache_root, data, s, name, image_size=image_size).build(backbone, device=device,
                                                                                 progress=progress)
        for s in SPLITS
    }  # fmt: skip


def find_dataset(
    data_root: Union[str, Path], dataset: str = "auto", lang: str = "en", synth_images: int = 2000
) -> Path:
    """Folder of ``dataset`` (``"auto"``, ``"synth"`` or a real name), else of the synthetic one.

    ``"auto"`` never downloads; a real name downloads on Colab (``get_dataset``). The
    synthetic dataset (``synth_images`` images, captions in ``lang``) is generated once
    into ``data_root / f"synth_{lang}"``.
    """
    folder = None
    if dataset != "synth":
        name = "flickr8k" if dataset == "auto" else dataset
        folder = get_dataset(name, data_root, allow_download=False if dataset == "auto" else None)
    if folder is None:
        folder = synth.generate(Path(data_root) / f"synth_{lang}", n_images=synth_images, lang=lang)
    return Path(folder)


def subsample(data: CaptionData, max_images: Optional[int]) -> CaptionData:
    """A regular sample of at most ``max_images`` images (every k-th key), or ``data`` itself."""
    if max_images is None or len(data.captions) <= max_images:
        return data
    keep = data.images()[:: len(data.captions) // max_images][:max_images]
    return dataclasses.replace(
        data, captions={k: data.captions[k] for k in keep}, split={k: data.split[k] for k in keep if k in data.split}
    )


def prepare_caption_data(
    data_root: Union[str, Path],
    fast: bool,
    dataset: str = "auto",
    lang: str = "en",
    synth_images: Optional[int] = None,
    max_images: Optional[int] = None,
    min_freq: int = 2,
    device: Union[str, torch.device] = "cpu",
    backbone: Optional[nn.Module] = None,
    build_inputs: bool = True,
) -> CaptionSetup:
    """Dataset, vocabulary and model inputs of chapters 08-10, as chapter 07 builds them.

    ``synth_images``: size of the synthetic dataset (None: 300 in fast mode, else 2,000).
    ``max_images``: in fast mode a real dataset keeps a regular sample of this many images
    (None: ``synth_images``); in full mode every image is kept.
    ``min_freq``: a word enters the vocabulary when seen this often in the training captions.
    ``device``: where the frozen encoder runs to fill the feature caches.
    ``backbone``: the frozen encoder (None: ``build_encoder(NETWORK, grid=GRID)``: ResNet-50
    with ImageNet weights, else EfficientNet-Lite0, one line says which); it needs ``name``,
    ``grid`` and ``encoder_dim`` attributes, as the kit's encoders have.
    ``build_inputs=False``: data and vocabulary only, no feature cache.
    Cache folders live under ``data_root / "cache"``, keyed so that chapters share them.
    """
    synth_images = synth_images if synth_images is not None else (300 if fast else 2000)
    folder = find_dataset(data_root, dataset, lang, synth_images)
    data = load_dataset(folder)
    synthetic = (folder / "boxes.json").is_file()  # the synthetic set knows where every object is
    if fast:
        data = subsample(data, max_images if max_images is not None else synth_images)
    train_tokens = [tokenize(c) for k in data.images("train") for c in data.captions[k]]
    vocab = Vocabulary.build(train_tokens, min_freq=min_freq)  # the lab report TP2 Attention: words seen twice or more
    image_size = SYNTH_IMAGE_SIZE if synthetic else REAL_IMAGE_SIZE
    if build_inputs and backbone is None:
        backbone = build_encoder(NETWORK, grid=GRID)  # frozen; prints which network and weights
    name = backbone.name if backbone is not None else NETWORK
    dim = backbone.encoder_dim if backbone is not None else BACKBONES[NETWORK]
    grid = backbone.grid if backbone is not None else GRID
    prepared = CaptionSetup(data=data, folder=folder, synthetic=synthetic, vocab=vocab, train_tokens=train_tokens,
                            encoder=name, image_size=image_size, grid=grid, encoder_dim=dim, backbone=backbone)
    if build_inputs:
        prepared.caches = build_caches(Path(data_root) / "cache", data, backbone, image_size, device)
    return prepared
