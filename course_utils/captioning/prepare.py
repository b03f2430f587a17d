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
4. **model inputs**:

   * synthetic data: 64 x 64 images for a small CNN trained with the decoder
     (an 8 x 8 grid of 128-number regions), decoded once into an ``ImageStore`` per split;
   * a real dataset: a frozen ImageNet ResNet-50 at 224 x 224 (7 x 7 = 49 regions of
     2,048 numbers), run once per image into a ``FeatureCache`` per split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from course_utils.caption_data import synth
from course_utils.caption_data.cache import FeatureCache, ImageStore
from course_utils.caption_data.fetch import get_dataset
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.records import CaptionData
from course_utils.captioning.encoders import build_encoder
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision.image_io import eval_transform

SPLITS = ("train", "val", "test")
SMALL_CNN_CHANNELS = [16, 32, 64, 128]  # the small CNN's blocks, written into checkpoints


@dataclasses.dataclass
class CaptionSetup:
    """A dataset ready for training: captions, vocabulary, and the encoder's inputs per split.

    ``encoder``/``image_size``/``grid``: ``"small_cnn"``, 64 px, 8 on synthetic data;
    ``"resnet50"``, 224 px, 7 on a real one (``grid x grid`` regions per image).
    ``stores``: split -> ``ImageStore`` of ``(num_images, image_size, image_size, 3)`` uint8
    (synthetic data); ``caches``: split -> ``FeatureCache`` of
    ``(num_images, grid*grid, encoder_dim)`` features, and ``backbone`` the frozen encoder
    that made them (a real dataset). Both are empty when built with ``build_inputs=False``.
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
    stores: dict[str, ImageStore] = dataclasses.field(default_factory=dict)
    caches: dict[str, FeatureCache] = dataclasses.field(default_factory=dict)
    backbone: Optional[nn.Module] = None

    def inputs_for(self, split: str) -> dict:
        """Keyword arguments of CaptionDataset / EvalDataset: stored images (small CNN) or cached features."""
        if self.synthetic:
            return dict(transform=eval_transform(self.image_size), store=self.stores[split])  # resize + ImageNet norm
        return dict(features=self.caches[split])

    def encoder_config(self) -> dict:
        """The encoder part of a model config: the small CNN, or none for cached features (the
        checkpoint then names the encoder that made them, so ``python -m course_utils caption`` can use it)."""
        if self.synthetic:  # channels written out so the checkpoint rebuilds the same network
            return dict(
                encoder=self.encoder, grid=self.grid, channels=list(SMALL_CNN_CHANNELS), image_size=self.image_size
            )
        return dict(
            encoder=None,
            encoder_dim=self.encoder_dim,
            feature_encoder=self.encoder,
            grid=self.grid,
            image_size=self.image_size,
        )

    def summary(self) -> list[str]:
        """Three lines: the dataset and its splits, the vocabulary, the encoder."""
        data, grid = self.data, self.grid
        splits = {s: len(data.images(s)) for s in SPLITS}
        return [
            f"{data.name}: {len(data.captions):,} images, {data.num_captions():,} captions, {splits}",
            f"vocabulary: {len(self.vocab)} words, e.g. {self.vocab.itos[:12]}",
            f"encoder: {self.encoder}, {grid} x {grid} = {grid * grid} regions, images of {self.image_size} px",
        ]


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
    ``device``: where the frozen encoder runs to fill the feature caches (real data).
    ``backbone``: the frozen encoder for a real dataset (None: ``build_encoder("resnet50",
    grid=7)``, ImageNet weights, one warning line offline); it needs ``name``, ``grid``
    and ``encoder_dim`` attributes, as the kit's encoders have.
    ``build_inputs=False``: data and vocabulary only, no image store or feature cache.
    Cache folders live under ``data_root / "cache"``, keyed so that chapters share them.
    """
    synth_images = synth_images if synth_images is not None else (300 if fast else 2000)
    folder = find_dataset(data_root, dataset, lang, synth_images)
    data = load_dataset(folder)
    synthetic = (folder / "boxes.json").is_file()  # the synthetic set knows where every object is
    if fast:
        data = subsample(data, max_images if max_images is not None else synth_images)
    train_tokens = [tokenize(c) for k in data.images("train") for c in data.captions[k]]
    vocab = Vocabulary.build(train_tokens, min_freq=min_freq)  # seed 001: the words seen at least twice
    cache_root = Path(data_root) / "cache"
    common = dict(data=data, folder=folder, synthetic=synthetic, vocab=vocab, train_tokens=train_tokens)
    if synthetic:  # offline there are no ImageNet weights; a small CNN learns these shapes in minutes
        prepared = CaptionSetup(
            **common, encoder="small_cnn", image_size=64, grid=8, encoder_dim=SMALL_CNN_CHANNELS[-1]
        )
        if build_inputs:
            prepared.stores = {s: ImageStore(cache_root, data, s, size=64).build(progress=False) for s in SPLITS}
        return prepared
    if build_inputs and backbone is None:
        backbone = build_encoder("resnet50", grid=7)  # frozen, ImageNet weights (one warning line offline)
    prepared = CaptionSetup(**common, encoder="resnet50", image_size=224, grid=7, encoder_dim=2048, backbone=backbone)
    if backbone is not None:  # another frozen encoder (the tests use a small one)
        prepared.encoder, prepared.grid, prepared.encoder_dim = backbone.name, backbone.grid, backbone.encoder_dim
    if build_inputs:
        prepared.caches = {
            s: FeatureCache(cache_root, data, s, prepared.encoder, image_size=224).build(backbone, device=device)
            for s in SPLITS
        }
    return prepared
