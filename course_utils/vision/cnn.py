"""The small CNN of the classifier project report (notebooks 04-05): three conv blocks, two dense layers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from course_utils.basics.networks import evaluating


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    """3 x 3 convolution (padding 1 keeps the size), ReLU, 2 x 2 max pooling (halves it).

    ``(batch, c_in, H, W)`` -> ``(batch, c_out, H // 2, W // 2)``.
    """
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """The network of the classifier project report: three conv blocks, flatten, two dense layers, dropout.

    ``(batch, 3, image_size, image_size)`` -> ``(batch, num_classes)`` **logits**. The
    report's softmax is not a layer here: ``nn.CrossEntropyLoss`` applies log-softmax
    itself (more stable), and :meth:`predict_proba` applies softmax for predictions.
    ``image_size`` must be divisible by 8 (three poolings of 2).
    """

    def __init__(
        self,
        num_classes: int,
        image_size: int = 64,
        widths: Sequence[int] = (32, 64, 128),
        hidden: int = 128,
        dropout: float = 0.5,
        in_channels: int = 3,
    ):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be divisible by 8 (three 2x2 poolings), got {image_size}")
        chans = [in_channels, *widths]
        self.features = nn.Sequential(*[conv_block(a, b) for a, b in zip(chans, chans[1:])])
        side = image_size // 2 ** len(widths)  # 64 -> 8
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (batch, widths[-1] * side * side)
            nn.Linear(widths[-1] * side * side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),  # "a dropout layer before the output" (the classifier project report)
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.features(images))

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, num_classes)`` probabilities (rows sum to 1)."""
        with evaluating(self):
            return self(images).softmax(dim=1)
