"""Image encoders: a picture in, a grid of region vectors out.

Every encoder maps ``images (batch, 3, H, W)`` to
``features (batch, num_pixels, encoder_dim)``: the image is cut into a
``grid x grid`` layout of regions (7 x 7 = 49 by default, as in the lab report *TP2 Attention*) and each
region gets one vector. Region ``r`` is row ``r // grid``, column ``r % grid``
(row-major, top-left first), which is how attention maps are drawn back on the image.

Two families:

* :class:`PretrainedEncoder`: an ImageNet CNN (ResNet-50/101/152, MobileNetV2 or
  EfficientNet-Lite0) cut after one of its stages, followed by adaptive average pooling
  to the grid. Its weights come from ``course_utils.vision.pretrained.load_imagenet``:
  torchvision's ImageNet weights when they are cached or can be downloaded, otherwise
  EfficientNet-Lite0 with the ImageNet weights a pip package installs (one line says
  which); random weights only when asked for (``weights=None``). This is the encoder of
  every captioning run of the kit, frozen, its features computed once into a
  ``FeatureCache`` (the design of the lab report *TP2 Attention*).
* :class:`SmallCNNEncoder`: a four-block CNN trained from scratch with the decoder, for
  the comparison "pretrained vs from scratch".
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from course_utils.basics.networks import evaluating
from course_utils.vision.pretrained import backbone_blocks, block_names, load_imagenet


class PretrainedEncoder(nn.Module):
    """An ImageNet CNN cut after a block, then pooled to a ``grid x grid`` grid.

    ``images (batch, 3, H, W)`` (ImageNet-normalised) -> ``features (batch, grid*grid, encoder_dim)``;
    for ResNet-50 at 224 x 224: ``(batch, 49, 2048)``.

    ``name``: a network (``"resnet50"``: up to its last feature map), or a network and the
    last block to keep, ``"NETWORK:BLOCK"`` with a block of ``pretrained.block_names``
    (``"efficientnet_lite0:blocks.4"``, ``"resnet50:layer3"``): earlier blocks have a finer
    map whose vectors each describe a smaller part of the image. ``self.name`` is the
    encoder actually built (EfficientNet-Lite0 when a whole network's weights cannot be had,
    see ``load_imagenet``); ``self.weights`` says where its weights came from; both go into
    checkpoints and cache names. ``fine_tune_blocks``: how many of the last kept blocks train
    (0 = frozen feature extractor, 1 = ResNet's ``layer4``, -1 = all). Frozen blocks stay in
    eval mode, so their batch-norm statistics never move.
    """

    def __init__(
        self,
        name: str = "resnet50",
        grid: int = 7,
        fine_tune_blocks: int = 0,
        weights: Union[str, Path, None] = "imagenet",
        quiet: bool = False,
    ) -> None:
        super().__init__()
        network, _, last = name.partition(":")
        net = load_imagenet(network, weights, fallback=not last, quiet=quiet)  # a cut names its network's block
        names = block_names(net.name)
        if last and last not in names:
            raise ValueError(f"{network} has no block {last!r}; its blocks are {', '.join(names)}")
        keep = names.index(last) + 1 if last else len(names)
        self.name = f"{net.name}:{last}" if last else net.name
        self.weights, self.grid = net.weights, grid
        self.blocks = nn.Sequential(*backbone_blocks(net.name, net.model)[:keep])
        self.encoder_dim = self._channels()
        self.pool = nn.AdaptiveAvgPool2d((grid, grid))
        self.fine_tune(fine_tune_blocks)

    @torch.no_grad()
    def _channels(self) -> int:
        """Channels of the kept blocks' output, measured on a small dummy batch (works for any cut)."""
        with evaluating(self.blocks):
            out = self.blocks(torch.zeros(1, 3, 64, 64))  # (1, encoder_dim, h, w)
        return int(out.shape[1])

    def fine_tune(self, blocks: int) -> None:
        """Train only the last ``blocks`` blocks (0 = none, -1 = all)."""
        n = len(self.blocks)
        first_trained = 0 if blocks < 0 else n - min(blocks, n)
        self.frozen = [b for i, b in enumerate(self.blocks) if i < first_trained]
        for i, block in enumerate(self.blocks):
            for p in block.parameters():
                p.requires_grad_(i >= first_trained)
        self.train(self.training)

    def train(self, mode: bool = True) -> PretrainedEncoder:
        super().train(mode)
        for block in self.frozen:
            block.eval()  # frozen batch norms keep their ImageNet statistics
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, grid*grid, encoder_dim)``."""
        maps = self.pool(self.blocks(images))  # (batch, encoder_dim, grid, grid)
        return maps.flatten(2).transpose(1, 2)  # (batch, num_pixels, encoder_dim)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    """3x3 convolution (no bias: batch norm has one) + batch norm + ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNNEncoder(nn.Module):
    """A small CNN trained from scratch with the decoder (no pretrained weights needed).

    ``images (batch, 3, H, W)`` -> ``features (batch, grid*grid, encoder_dim)``.
    A first conv at full resolution (small shapes need their details), then one conv +
    2x2 max pooling per entry of ``channels[1:]``, then a last conv that mixes
    neighbouring regions: with the defaults, 64 px -> 32 -> 16 -> 8, an 8 x 8 grid whose
    regions each see 40 px around them (a whole shape of the synthetic data).
    A convolution treats every region the same way, so a context vector (a weighted sum
    of regions) would not know *where* the decoder looked; a learned position vector is
    added to each region so that the decoder can say "left of".
    """

    def __init__(self, grid: int = 8, channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.name, self.grid, self.encoder_dim = "small_cnn", grid, channels[-1]
        layers = conv_bn_relu(3, channels[0])
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [*conv_bn_relu(c_in, c_out), nn.MaxPool2d(2)]
        layers += conv_bn_relu(channels[-1], channels[-1])
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((grid, grid))
        self.position = nn.Parameter(0.1 * torch.randn(1, grid * grid, self.encoder_dim))  # (1, num_pixels, dim)
        self.blocks.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, grid*grid, encoder_dim)``.

        Computed in the channels-last memory layout, which oneDNN's CPU convolutions and
        pooling run about 20 % faster (measured on 2 cores); the result is the same.
        """
        maps = self.pool(self.blocks(images.contiguous(memory_format=torch.channels_last)))  # (batch, dim, grid, grid)
        return maps.flatten(2).transpose(1, 2) + self.position


def build_encoder(
    name: str,
    grid: int = 7,
    fine_tune_blocks: int = 0,
    weights: Union[str, Path, None] = "imagenet",
    channels: Optional[tuple[int, ...]] = None,
) -> nn.Module:
    """``"small_cnn"``, a network name from ``course_utils.vision.pretrained.BACKBONES``, or ``"NETWORK:BLOCK"``."""
    if name == "small_cnn":
        return SmallCNNEncoder(grid, tuple(channels)) if channels else SmallCNNEncoder(grid)
    return PretrainedEncoder(name, grid, fine_tune_blocks, weights)
