"""The CNNs of notebook 04 (also used by 05).

``SmallCNN`` is the network of the classifier project report: three conv blocks, flatten,
two dense layers. ``CompactCNN`` keeps the three blocks but ends with global average
pooling: its head does not grow with the image, so 128-pixel images fit in 25 k parameters
where ``SmallCNN`` needs 4.3 M.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from course_utils.basics.networks import evaluating


def conv_block(c_in: int, c_out: int, batch_norm: bool = False) -> nn.Sequential:
    """3 x 3 convolution (padding 1 keeps the size), [batch norm], ReLU, 2 x 2 max pooling (halves it).

    ``(batch, c_in, H, W)`` -> ``(batch, c_out, H // 2, W // 2)``.
    """
    conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
    norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
    return nn.Sequential(conv, *norm, nn.ReLU(), nn.MaxPool2d(2))


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


class CompactCNN(nn.Module):
    """Three conv blocks with batch norm, then global average pooling, dropout and one dense layer.

    ``(batch, 3, H, W)`` -> ``(batch, num_classes)`` logits for any ``H, W`` divisible by 8.
    Averaging each of the last ``widths[-1]`` feature maps over its whole surface (GoogLeNet's
    idea) gives one value per map, so the dense layer has ``widths[-1] * num_classes`` weights
    whatever the image size: 24,458 parameters in all for 10 classes, at 32 or at 128 pixels.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64), dropout: float = 0.3,
                 in_channels: int = 3):
        super().__init__()
        chans = [in_channels, *widths]
        self.features = nn.Sequential(*[conv_block(a, b, batch_norm=True) for a, b in zip(chans, chans[1:])])
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, num_classes)`` logits."""
        maps = self.features(images)  # (batch, widths[-1], H / 8, W / 8)
        pooled = maps.mean(dim=(2, 3))  # global average pooling: (batch, widths[-1])
        return self.head(self.dropout(pooled))
