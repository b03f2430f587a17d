"""ImageNet-pretrained classifiers from torchvision, as notebook 05 (transfer learning) uses them.

``load_backbone(name)`` returns a torchvision classifier (ResNet-50/101/152, MobileNetV2)
with its ImageNet weights when they are cached or can be downloaded, or read from a
local file. **Fallback offline**: one warning line, and the network keeps its random
initialisation. The captioner's encoders (``course_utils.captioning.encoders``) cut
these networks before their classifier.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torchvision

# torchvision constructor name -> channels of the last feature map (the encoder_dim)
BACKBONES = {"resnet50": 2048, "resnet101": 2048, "resnet152": 2048, "mobilenet_v2": 1280}


class WeightsUnavailable(RuntimeError):
    """The pretrained weights could not be downloaded or read."""


def imagenet_state_dict(name: str) -> dict:
    """torchvision's ImageNet weights for ``name``: from the hub cache, else downloaded.

    Raises :class:`WeightsUnavailable` with a one-line reason when offline.
    """
    weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False)  # reads ~/.cache/torch/hub first
    except OSError as err:  # URLError (offline, DNS), HTTP errors, disk errors
        reason = getattr(err, "reason", err)
        raise WeightsUnavailable(f"cannot download {weights.url} ({reason})") from None


def load_backbone(name: str, weights: Union[str, Path, None] = "imagenet") -> nn.Module:
    """A torchvision classifier ``name`` with ``weights``: ``"imagenet"``, a local file, or None.

    A local file holds a state dict (``torch.save(model.state_dict(), path)``) and is read
    with ``weights_only=True``. If ImageNet weights are unreachable, warns in one line and
    returns the randomly initialised network (the documented fallback).
    """
    if name not in BACKBONES:
        raise ValueError(f"encoder {name!r} is not supported; choose from {', '.join(BACKBONES)}")
    model = torchvision.models.get_model(name, weights=None)
    if weights is None:
        return model
    if str(weights) == "imagenet":
        try:
            model.load_state_dict(imagenet_state_dict(name))
        except WeightsUnavailable as err:
            print(f"warning: {name}: no ImageNet weights ({err}); using random initialisation: "
                  "fine-tune the whole encoder or use the small CNN", file=sys.stderr)
        return model
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path}: not a {name} state dict ({first})") from None
    return model


def backbone_blocks(name: str, model: nn.Module) -> list[nn.Module]:
    """The network up to its last feature map, as a list of blocks (input side first).

    ResNet: ``conv1, bn1, relu, maxpool, layer1 ... layer4`` (``avgpool`` and ``fc`` dropped).
    MobileNetV2: its 19 ``features`` blocks (``classifier`` dropped).
    """
    if name.startswith("resnet"):
        return list(model.children())[:-2]
    return list(model.features.children())
