"""What ``bench`` measures on: sizes, the synthetic data and its caches, the decoders, one training step."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.captioning.attention import DecoderOutput, ShowAttendTell, doubly_stochastic_penalty

# feature_cache_speedup has no goal: arithmetic bounds it ((ResNet-50 + decoder) / decoder, printed beside it).
GOALS = {"decoder_speedup": 1.3, "beam_batch_speedup": 5.0, "image_store_speedup": 3.0,
         "decoder_matmul_share": 0.5, "feature_cache_overlap": 0.8}  # fmt: skip
DECODER = {"embed_dim": 256, "hidden_dim": 256, "attention_dim": 256, "dropout": 0.5}  # the lab report TP2 Attention's
ENCODER_DIM, GRID, MODEL_PX = 2048, 7, 224  # ResNet-50 grid features (batch, 49, 2048) of 224 px images
SEED_VOCAB = 12509  # words in the lab report TP2 Attention's Flickr30k vocabulary: the decoder's output layer


@dataclass(frozen=True)
class Sizes:
    """How much work each measure does (more = steadier numbers, longer run)."""

    images: int  # synthetic images generated (80 % form the train split that is measured)
    image_px: int  # side of the generated JPEGs in pixels (Flickr8k photos are about 500 x 375)
    batch: int  # training batch (the lab report TP2 Attention: 32)
    rounds: int  # alternating rounds: kit, baseline, kit, baseline, ...
    cached_steps: int  # training steps per round on cached features
    resnet_steps: int  # training steps per round running ResNet-50 on each batch
    decoder_steps: int  # training steps per round of each decoder
    beam_images: int  # images captioned by beam search, batched and one by one
    memory_batch: int  # batch of the peak-memory step (the issue asks for 64)


SIZES = {
    "smoke": Sizes(
        images=20,
        image_px=96,
        batch=4,
        rounds=1,
        cached_steps=2,
        resnet_steps=1,
        decoder_steps=2,
        beam_images=4,
        memory_batch=8,
    ),  # fmt: skip
    "quick": Sizes(
        images=60,
        image_px=500,
        batch=32,
        rounds=2,
        cached_steps=5,
        resnet_steps=1,
        decoder_steps=5,
        beam_images=64,
        memory_batch=64,
    ),  # fmt: skip
    "full": Sizes(
        images=400,
        image_px=500,
        batch=32,
        rounds=4,
        cached_steps=10,
        resnet_steps=2,
        decoder_steps=10,
        beam_images=64,
        memory_batch=64,
    ),  # fmt: skip
}


# --------------------------------------------------------------------------- the baseline decoder
class PaddedDecoder(ShowAttendTell):
    """The straightforward teacher forcing: every step runs the whole batch, padding included.

    Same layers and sizes as :class:`ShowAttendTell` (it inherits them); only ``forward``
    differs: ``max_len - 1`` steps over all ``batch`` rows, logits for every position
    ``(batch * steps, vocab_size)``, and the loss ignores ``<pad>`` targets
    (``cross_entropy(..., ignore_index=pad)``, as the lab report *TP2 Attention* does). Captions are padded to
    the longest of the batch, not to a fixed length: the kinder version of the seed.
    """

    def forward(self, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> DecoderOutput:
        steps = captions.shape[1] - 1
        embedded = self.embedding(captions[:, :steps])  # (batch, steps, embed_dim)
        projected = self.attention.project(features)  # (batch, num_pixels, attention_dim)
        h, c = self.init_hidden(features)  # (batch, hidden_dim) each
        logits, alphas = [], []
        for t in range(steps):
            context, alpha = self.attend(features, projected, h)
            h, c = self.lstm(torch.cat([embedded[:, t], context], dim=1), (h, c))
            logits.append(self.fc(self.dropout(h)))  # (batch, vocab_size)
            alphas.append(alpha)
        targets = captions[:, 1:]  # (batch, steps)
        real = (targets != self.embedding.padding_idx).unsqueeze(2)  # (batch, steps, 1)
        alphas_t = torch.stack(alphas, dim=1) * real  # (batch, steps, num_pixels), zero on padding
        return DecoderOutput(torch.stack(logits, dim=1).flatten(0, 1), targets.reshape(-1), alphas_t)


def padded_loss(out: DecoderOutput, pad_id: int = 0, alpha_c: float = 1.0) -> torch.Tensor:
    """Cross-entropy over real tokens (``<pad>`` ignored) + the doubly stochastic penalty."""
    ce = F.cross_entropy(out.logits, out.targets, ignore_index=pad_id)
    return ce + alpha_c * doubly_stochastic_penalty(out.alphas)


# --------------------------------------------------------------------------- data
@dataclass
class BenchData:
    """The dataset, its vocabulary, and the caches built from its train split."""

    data: Any  # formats.CaptionData
    vocab: Any  # vocab.Vocabulary
    features: Any  # cache.FeatureCache of the train split, (num_images, 49, 2048)
    store: Any  # cache.ImageStore of the train split, (num_images, 224, 224, 3)
    cache_seconds: float  # time to build the feature cache once
    store_seconds: float  # time to build the image store once


def prepare(root: Path, sizes: Sizes, device: torch.device, log: Callable[[str], None]) -> BenchData:
    """Generate the synthetic JPEGs (once), build the vocabulary, the feature cache and the image store."""
    from course_utils.caption_data.cache import FeatureCache, ImageStore
    from course_utils.caption_data.formats import load_dataset
    from course_utils.caption_data.synth import generate
    from course_utils.captioning.encoders import PretrainedEncoder
    from course_utils.sequence.text import tokenize
    from course_utils.sequence.vocab import Vocabulary

    folder = generate(root / f"synth_en_{sizes.images}_{sizes.image_px}px", n_images=sizes.images,
                      image_size=sizes.image_px)  # fmt: skip
    data = load_dataset(folder)
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=2)
    log(f"data: {folder} ({len(data.images('train'))} train images of {sizes.image_px} px, vocabulary {len(vocab)})")
    encoder = PretrainedEncoder("resnet50", GRID, fine_tune_blocks=0, weights=None)  # same compute as ImageNet's
    start = time.perf_counter()
    features = FeatureCache(root / "cache", data, "train", "resnet50-random", MODEL_PX)
    features.build(encoder, device=device, batch_size=sizes.batch, progress=False, force=True)
    cache_seconds = time.perf_counter() - start
    start = time.perf_counter()
    store = ImageStore(root / "cache", data, "train", size=MODEL_PX).build(progress=False, force=True)
    return BenchData(data, vocab, features, store, cache_seconds, time.perf_counter() - start)


def caption_loader(bench: BenchData, sizes: Sizes, **source: Any) -> Any:
    """Shuffled training batches ``(inputs, captions, lengths)`` of the train split."""
    from torch.utils.data import DataLoader

    from course_utils.caption_data.datasets import CaptionDataset, collate_captions

    dataset = CaptionDataset(bench.data, "train", bench.vocab, **source)
    g = torch.Generator().manual_seed(0)
    return DataLoader(dataset, batch_size=sizes.batch, shuffle=True, generator=g, collate_fn=collate_captions)


def decoder_model(cls: type, vocab_size: int) -> ShowAttendTell:
    """A decoder of the lab report *TP2 Attention*'s size (embedding, LSTM and attention 256; 2048-d regions),
    seeded."""
    torch.manual_seed(0)
    return cls(vocab_size, encoder_dim=ENCODER_DIM, **DECODER)


# --------------------------------------------------------------------------- the measures
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: Any, device: torch.device,
               loss_fn: Callable[[DecoderOutput], torch.Tensor]) -> int:  # fmt: skip
    """One optimisation step (forward, loss, backward, clip, Adam); returns the real target tokens."""
    inputs, captions, lengths = (t.to(device, non_blocking=True) for t in batch[:3])
    out = model(inputs, captions, lengths)
    loss = loss_fn(out)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()
    return int((lengths - 1).sum())


def kit_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """The kit's optimizer (``train.make_optimizer``: Adam 1e-3 over the trainable parameters), used by both sides."""
    from course_utils.captioning.train import TrainConfig, make_optimizer

    return make_optimizer(model, TrainConfig(lr=1e-3))


def stepper(model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator, device: torch.device,
            loss_fn: Callable[[DecoderOutput], torch.Tensor]) -> Callable[[], int]:  # fmt: skip
    """A function that trains on the next batch of ``batches`` each time it is called."""
    return lambda: train_step(model, optimizer, next(batches), device, loss_fn)


def kit_loss(out: DecoderOutput) -> torch.Tensor:
    from course_utils.captioning.train import caption_loss

    return caption_loss(out, alpha_c=1.0)[0]


def ratio(rates: dict[str, float], unit: str, **extra: Any) -> dict[str, Any]:
    return {"value": rates["kit"] / rates["baseline"], "kit": rates["kit"], "baseline": rates["baseline"],
            "unit": unit, **extra}  # fmt: skip
