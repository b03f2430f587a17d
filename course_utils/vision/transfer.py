"""Transfer learning: the three training scenarios of the CNN slides (notebook 05).

1. **from scratch**: random initialisation, every weight trained;
2. **frozen feature extractor**: an ImageNet network without its last layer, frozen;
   only a new linear layer (the "head") is trained on its features;
3. **fine-tuning**: start from ImageNet weights and keep training every layer (the
   pretrained ones with a smaller learning rate).

:class:`TransferNet` is one of torchvision's ResNet-50 or MobileNetV2 cut before its
global pooling, then pooled, with a new head. Because it ends with global average
pooling and one linear layer, its class activation map (CAM) is exact
(:meth:`TransferNet.cam`).

**Pretrained weights** come from ``course_utils.vision.pretrained.load_imagenet``:
torchvision's (hub cache, or downloaded from ``download.pytorch.org``: ~100 MB for
ResNet-50, ~14 MB for MobileNetV2), a local file (``weights="path/to/state_dict.pth"``),
or, offline, EfficientNet-Lite0 with the ImageNet weights a pip package installs; one
line says which network and weights are in use (``TransferNet.arch``/``weights_source``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from course_utils.basics.networks import evaluating
from course_utils.vision.architectures import count_parameters
from course_utils.vision.cam import class_activation_map, normalize_map, upsample_map
from course_utils.vision.classify import predict, train_classifier
from course_utils.vision.pretrained import BACKBONES, backbone_blocks, imagenet_classes, imagenet_head, load_imagenet

MODES = ("scratch", "frozen", "finetune")
ARCHS = ("resnet50", "mobilenet_v2")


class TransferNet(nn.Module):
    """An ImageNet backbone cut before pooling + global average pooling + a linear head.

    ``images (batch, 3, H, W)`` -> ``logits (batch, num_classes)``; the backbone's feature
    maps are ``(batch, C, H/32, W/32)`` with ``C`` = 2048 (ResNet-50) or 1280 (MobileNetV2).

    ``mode``: ``"scratch"`` (random weights, all trained), ``"frozen"`` (pretrained
    backbone frozen and kept in eval mode so its batch-norm statistics never move; only
    the head trains) or ``"finetune"`` (pretrained, everything trains).
    ``num_classes=None`` keeps torchvision's own ImageNet head (1,000 classes).
    """

    def __init__(
        self,
        arch: str = "mobilenet_v2",
        num_classes: Optional[int] = None,
        mode: str = "frozen",
        weights: Union[str, Path, None] = "imagenet",
        dropout: float = 0.2,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        net = load_imagenet(arch, None if mode == "scratch" else weights)  # prints which network and weights
        self.arch, self.mode, self.weights_source = net.name, mode, net.weights  # arch: the network built
        self.blocks = nn.Sequential(*backbone_blocks(net.name, net.model))  # (batch, C, h, w)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        if num_classes is None:  # the ImageNet classifier itself
            self.fc = imagenet_head(net.name, net.model)
            self.class_names: Optional[list[str]] = imagenet_classes()
        else:
            self.fc = nn.Linear(BACKBONES[net.name], num_classes)
            self.class_names = None
        for p in self.blocks.parameters():
            p.requires_grad_(mode != "frozen")
        self.train()  # puts a frozen backbone in eval mode from the start

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if self.mode == "frozen":
            self.blocks.eval()  # a frozen extractor keeps its ImageNet batch-norm statistics
        return self

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, C, H/32, W/32)``: the maps the head pools."""
        return self.blocks(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, num_classes)`` logits."""
        pooled = self.pool(self.feature_maps(images)).flatten(1)  # (batch, C)
        return self.fc(self.dropout(pooled))

    @torch.no_grad()
    def cam(self, image: torch.Tensor, class_idx: Optional[int] = None) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Class activation map of one image ``(3, H, W)``.

        Returns ``(cam (H, W) in [0, 1], class_idx, probs (num_classes,))`` on the CPU; the class
        defaults to the predicted one. Since ``logit_k = sum_c w[k, c] * mean(A_c) + b_k``,
        the map ``sum_c w[k, c] * A_c`` shows where the evidence for class ``k`` lies.
        """
        with evaluating(self):
            maps = self.feature_maps(image[None].to(self.fc.weight.device))[0]  # (C, h, w), on the model's device
            probs = self.fc(maps.mean(dim=(1, 2))).softmax(0).cpu()  # (num_classes,)
        if class_idx is None:
            class_idx = int(probs.argmax())
        cam = class_activation_map(maps, self.fc.weight, class_idx).cpu()  # (h, w), back for plotting
        return normalize_map(upsample_map(cam, tuple(image.shape[-2:]))), class_idx, probs


def transfer_optimizer(model: TransferNet, lr: float = 1e-3, backbone_lr_factor: float = 0.1) -> torch.optim.Adam:
    """Adam over the trainable parameters; when fine-tuning, the pretrained backbone gets
    ``lr * backbone_lr_factor`` so that large early updates do not wreck its features."""
    head = [p for p in model.fc.parameters() if p.requires_grad]
    body = [p for p in model.blocks.parameters() if p.requires_grad]
    factor = backbone_lr_factor if model.mode == "finetune" and model.weights_source != "random" else 1.0
    groups = [{"params": head, "lr": lr}]
    if body:
        groups.append({"params": body, "lr": lr * factor})
    return torch.optim.Adam(groups)


def run_scenario(
    arch: str,
    mode: str,
    loaders: dict[str, DataLoader],
    num_classes: int,
    epochs: int = 3,
    lr: float = 1e-3,
    device: Union[str, torch.device] = "cpu",
    weights: Union[str, Path, None] = "imagenet",
    verbose: bool = False,
) -> tuple[TransferNet, dict]:
    """Train one (architecture, scenario) pair on ``loaders["train"]`` / ``["val"]`` and test it.

    Same data, epochs and learning rate for every scenario, so the rows compare. Returns
    the trained model and one row: test accuracy, parameters (total and trained), seconds
    per epoch, where the weights came from, and the ``history``.
    """
    model = TransferNet(arch, num_classes, mode, weights)
    opt = transfer_optimizer(model, lr)
    history = train_classifier(model, loaders["train"], loaders["val"], epochs=epochs, patience=epochs,
                  device=device, optimizer=opt, verbose=verbose)  # fmt: skip
    y_true, probs = predict(model, loaders["test"], device)
    row = {
        "arch": arch,
        "scenario": mode,
        "weights": model.weights_source,
        "test_acc": float((probs.argmax(1) == y_true).mean()),
        "params": count_parameters(model),
        "trained_params": count_parameters(model, trainable_only=True),
        "sec_per_epoch": float(np.mean(history["seconds"])),
        "history": history,
    }
    return model, row


def top_k(probs: torch.Tensor, class_names: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The ``k`` most probable classes of ``probs (num_classes,)`` as ``(name, probability)``, best first.

    Equal probabilities keep the order of the classes (a stable sort: ``torch.topk`` may list
    tied classes in any order); ``k`` larger than the number of classes gives them all.
    """
    probs = torch.as_tensor(probs)
    if probs.ndim != 1 or len(probs) != len(class_names):
        raise ValueError(f"expected one probability per class: probs {tuple(probs.shape)}, {len(class_names)} names")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    values, indices = probs.sort(descending=True, stable=True)  # (num_classes,) each
    return [(class_names[i], float(v)) for v, i in zip(values[:k].tolist(), indices[:k].tolist())]

