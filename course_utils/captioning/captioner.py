"""The whole captioner: an optional image encoder followed by a caption decoder.

With an encoder, the model takes ``images (batch, 3, H, W)``; without one it takes
cached encoder features ``(batch, num_pixels, encoder_dim)`` (``course_utils.caption_data.cache``),
which is how a frozen ResNet is trained cheaply: the CNN runs once per image, not once
per epoch.

A :class:`CaptionerConfig` describes the model. Checkpoints store it as a plain dict
(``dataclasses.asdict``), which :func:`build_captioner` reads back: a key it does not
know is refused, a missing key takes the default written in the dataclass::

    {"decoder": "attention", "vocab_size": 60, "encoder": "small_cnn", "grid": 7,
     "embed_dim": 128, "hidden_dim": 256, "attention_dim": 128, "dropout": 0.3}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Union

import torch
import torch.nn as nn

from course_utils.captioning.attention import ShowAttendTell
from course_utils.captioning.encoders import build_encoder
from course_utils.captioning.outputs import DecoderOutput
from course_utils.captioning.show_tell import ShowTell

DECODERS = {"attention": ShowAttendTell, "show_tell": ShowTell}


class Captioner(nn.Module):
    """``encoder`` (or None for cached features) + ``decoder`` (ShowAttendTell or ShowTell).

    ``concepts``: optional linear head ``encoder_dim -> vocab_size`` on the *max* over
    regions of the features, trained to predict the words all the image's captions use
    (multiple-instance "visual concepts", Fang et al. 2015). It is an auxiliary loss for
    an encoder trained from scratch: early in training the attention is nearly uniform,
    so the caption loss reaches the CNN as through a *mean* over the 64 regions, where an
    object covering 2 of them is diluted 30-fold; the max sends the gradient to the
    region that responds most. Measured on the synthetic data: a CNN learns the shapes
    to 90 % in 600 steps with max pooling, 17 % with mean pooling. Decoding ignores it.
    """

    def __init__(
        self, decoder: nn.Module, encoder: Optional[nn.Module] = None, concepts: Optional[nn.Module] = None
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.concepts = encoder, decoder, concepts
        self.config: Optional[CaptionerConfig] = None  # set by build_captioner

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """``images (batch, 3, H, W)`` or features -> ``features (batch, num_pixels, encoder_dim)``."""
        return self.encoder(inputs) if self.encoder is not None else inputs

    def forward(
        self,
        inputs: torch.Tensor,
        captions: torch.Tensor,
        lengths: torch.Tensor,
        owners: Optional[torch.Tensor] = None,
    ) -> DecoderOutput:
        """Teacher-forced training pass (see the decoder's ``forward``).

        ``owners (n_captions,)``, optional: caption ``j`` describes image ``owners[j]``, so
        several captions of one image share one encoder pass (``train.GroupedCaptions``).
        """
        features = self.encode(inputs)  # (n_images, num_pixels, encoder_dim)
        out = self.decoder(features if owners is None else features[owners], captions, lengths)
        if self.concepts is None:
            return out
        logits = self.concepts(features.max(dim=1).values)  # (n_images, vocab_size)
        return out._replace(concept_logits=logits, concept_targets=concept_targets(captions, owners, logits.shape))


def concept_targets(captions: torch.Tensor, owners: Optional[torch.Tensor], shape: torch.Size) -> torch.Tensor:
    """Multi-hot ``(n_images, vocab_size)``: 1 for each word that *every* caption of the image uses.

    ``captions (n_captions, max_len)``; ``owners (n_captions,)`` maps captions to images (None:
    one caption per image). Words all annotators agree on are the salient, visible ones
    (the objects and their colours); words only some captions use (a random "small", a
    template's "there are") are noise to a vision model: as targets they slowed learning
    the shapes from 500 steps to more than 600 (union of the words: 12 % of the images
    right after 600 steps; intersection: 76 %). Special tokens (ids 0-3) are never targets.
    """
    n_captions = len(captions)
    rows = owners if owners is not None else torch.arange(n_captions, device=captions.device)
    used = torch.zeros(n_captions, shape[1], device=captions.device)
    used[torch.arange(n_captions, device=captions.device)[:, None].expand_as(captions), captions] = 1.0
    counts = torch.zeros(shape, device=captions.device).index_add_(0, rows, used)  # captions using each word
    per_image = torch.bincount(rows, minlength=shape[0]).clamp(min=1)  # captions of each image
    targets = (counts == per_image[:, None]).float()
    targets[:, :4] = 0.0
    return targets


@dataclass
class CaptionerConfig:
    """Everything that rebuilds a :class:`Captioner` (its weights aside).

    ``encoder``: None (the model reads cached features of ``encoder_dim``), ``"small_cnn"``
    or a torchvision name; ``grid``, ``fine_tune_blocks``, ``encoder_weights`` and
    ``channels`` (the small CNN's blocks) configure it. ``hidden_dim=None`` takes the
    decoder's own size (256 for attention, 512 for Show and Tell, as in their papers).
    ``concepts=True`` adds the auxiliary concept head. ``image_size`` (pixels the encoder
    was trained on) and ``feature_encoder`` (the encoder that made cached features) are
    not used to build the model; they tell the apps and the ``caption`` command how to
    prepare an image, and ``trained_on`` what the decoder has seen (so a model trained on
    synthetic shapes says so in front of a photo).
    """

    vocab_size: int
    decoder: str = "attention"  # "attention" | "show_tell"
    encoder: Optional[str] = None
    grid: int = 7
    fine_tune_blocks: int = 0
    encoder_weights: Optional[str] = "imagenet"
    channels: Optional[list[int]] = None
    encoder_dim: int = 2048
    embed_dim: int = 256
    hidden_dim: Optional[int] = None
    attention_dim: int = 256
    num_layers: int = 1
    dropout: float = 0.5
    pad_id: int = 0
    concepts: bool = False
    image_size: Optional[int] = None
    feature_encoder: Optional[str] = None
    trained_on: Optional[str] = None  # the data the decoder learned from, said by the caption app and command

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> CaptionerConfig:
        """Read a stored config: unknown keys are refused, missing ones take the defaults above."""
        unknown = sorted(set(config) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"config: unknown key(s) {', '.join(map(repr, unknown))}")
        if "vocab_size" not in config:
            raise ValueError("config: 'vocab_size' is missing")
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        """The plain dict stored in checkpoints."""
        return dataclasses.asdict(self)


def build_captioner(config: Union[CaptionerConfig, Mapping[str, Any]]) -> Captioner:
    """A :class:`Captioner` from a :class:`CaptionerConfig` or its dict (the one stored in checkpoints).

    The model keeps its full config as ``model.config``.
    """
    cfg = config if isinstance(config, CaptionerConfig) else CaptionerConfig.from_dict(config)
    if cfg.decoder not in DECODERS:
        raise ValueError(f"config: decoder {cfg.decoder!r} is unknown; choose from {', '.join(DECODERS)}")
    encoder, encoder_dim = None, cfg.encoder_dim
    if cfg.encoder:
        encoder = build_encoder(cfg.encoder, grid=cfg.grid, fine_tune_blocks=cfg.fine_tune_blocks,
                                weights=cfg.encoder_weights, channels=cfg.channels)  # fmt: skip
        encoder_dim = encoder.encoder_dim
    sizes = dict(vocab_size=cfg.vocab_size, encoder_dim=encoder_dim, embed_dim=cfg.embed_dim, dropout=cfg.dropout,
                 pad_id=cfg.pad_id, **({} if cfg.hidden_dim is None else {"hidden_dim": cfg.hidden_dim}))  # fmt: skip
    if cfg.decoder == "attention":
        decoder = ShowAttendTell(attention_dim=cfg.attention_dim, **sizes)
    else:
        decoder = ShowTell(num_layers=cfg.num_layers, **sizes)
    concepts = nn.Linear(encoder_dim, cfg.vocab_size) if cfg.concepts else None
    model = Captioner(decoder, encoder, concepts)
    model.config = cfg
    return model
