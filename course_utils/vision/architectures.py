"""Classic CNN architectures, measured rather than quoted (notebook 04).

Slides quote "AlexNet: 60M parameters", "VGG: 138M parameters, about 500 MB". Here we
*measure* such numbers on the real torchvision models: every model is built with
``weights=None`` on PyTorch's ``meta`` device, where tensors have a shape but no data.
Building and running ResNet-152 there takes a fraction of a second and no memory, and
the parameter counts and output shapes are exactly those of the real model.

* :func:`layer_table` is PyTorch's answer to Keras' ``model.summary()``: one row per
  layer with its output shape and parameter count, measured with forward hooks.
* :func:`describe` and :func:`architecture_table` summarise whole models.
* :func:`factorisation_table` measures Inception v2's factorised convolutions (a 5 x 5 as
  two 3 x 3, an n x n as 1 x n then n x 1): same receptive field, fewer parameters.
* :func:`compound_scaling_table` puts EfficientNet's compound scaling rule next to the
  measured B0 ... B7 (:func:`multiply_adds` counts the work of one image).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import pandas as pd
import torch
import torchvision.models as tvm
from torch import nn

from course_utils.basics.networks import evaluating, model_device


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al., 1998): the first CNN of the slides.

    Written by hand because torchvision does not ship it. Average pooling and tanh,
    as in the original; input ``(batch, 1, 32, 32)`` grey digits -> ``(batch, 10)`` logits.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, kernel_size=5),  # (batch, 6, 28, 28)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (batch, 6, 14, 14)
            nn.Conv2d(6, 16, kernel_size=5),  # (batch, 16, 10, 10)
            nn.Tanh(),
            nn.AvgPool2d(2),  # (batch, 16, 5, 5)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (batch, 400)
            nn.Linear(16 * 5 * 5, 120),
            nn.Tanh(),
            nn.Linear(120, 84),
            nn.Tanh(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in_channels, 32, 32)`` -> ``(batch, num_classes)`` logits."""
        return self.classifier(self.features(x))


# name -> (year, builder, input size the model was designed for). Builders take no
# weights: we never download anything to count parameters.
CLASSIC: dict[str, tuple[int, Callable[[], nn.Module], int]] = {
    "LeNet-5": (1998, lambda: LeNet5(), 32),
    "AlexNet": (2012, lambda: tvm.alexnet(weights=None), 224),
    "VGG-16": (2014, lambda: tvm.vgg16(weights=None), 224),
    "VGG-19": (2014, lambda: tvm.vgg19(weights=None), 224),
    "GoogLeNet": (2014, lambda: tvm.googlenet(weights=None, aux_logits=False, init_weights=False), 224),
    "ResNet-50": (2015, lambda: tvm.resnet50(weights=None), 224),
    "ResNet-152": (2015, lambda: tvm.resnet152(weights=None), 224),
    "DenseNet-121": (2016, lambda: tvm.densenet121(weights=None), 224),
    "MobileNetV2": (2018, lambda: tvm.mobilenet_v2(weights=None), 224),
    "EfficientNet-B0": (2019, lambda: tvm.efficientnet_b0(weights=None), 224),
}


def build_on_meta(builder: Callable[[], nn.Module]) -> nn.Module:
    """Build a model on the ``meta`` device: real shapes, no memory, no initialisation cost."""
    with torch.device("meta"):
        return builder().eval()


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (weights and biases), optionally only those with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def run_with_hooks(model: nn.Module, modules: Sequence[nn.Module], hook: Callable, input_shape: Sequence[int]) -> None:
    """Run ``model`` once (eval mode, no gradients) on zeros of ``input_shape``, on its own device
    (a ``meta`` model costs nothing), with ``hook(module, inputs, output)`` on each of ``modules``."""
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with evaluating(model), torch.no_grad():
            model(torch.zeros(*input_shape, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """One row per leaf layer, in execution order: name, type, output shape, parameters.

    ``input_shape`` includes the batch, e.g. ``(1, 3, 64, 64)``. The model runs once on a
    zero tensor of that shape (on the model's device, so a ``meta`` model costs nothing).
    Layers used twice appear twice; ``nn.Flatten`` and activations appear with 0 parameters.
    """
    rows: list[dict] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        shape = tuple(output.shape) if hasattr(output, "shape") else None
        params = sum(p.numel() for p in module.parameters(recurse=False))
        rows.append({"layer": names[module], "type": type(module).__name__, "output shape": shape, "params": params})

    run_with_hooks(model, [m for m in model.modules() if not any(True for _ in m.children())], hook, input_shape)
    return pd.DataFrame(rows)


def head_input_shape(model: nn.Module, input_shape: Sequence[int]) -> Optional[tuple]:
    """Shape of the feature map the classifier head sees, e.g. ``(1, 2048, 7, 7)`` for ResNet-50.

    Measured as the last 4-D output of any sub-module (blocks included) other than a
    global (adaptive) pooling layer: the final feature map before the network pools and
    flattens it. ``None`` if the model never produces a 4-D tensor.
    """
    found: list[tuple] = []

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        if getattr(output, "ndim", 0) == 4 and not type(module).__name__.startswith("Adaptive"):
            found.append(tuple(output.shape))

    run_with_hooks(model, [m for m in model.modules() if m is not model], hook, input_shape)
    return found[-1] if found else None


def describe(name: str, image_size: Optional[int] = None) -> dict:
    """Measure one model of :data:`CLASSIC`.

    Returns ``year``, ``params`` (count), ``size_mb`` (float32 weights, 4 bytes each),
    ``weight_layers`` (convolutions + dense layers, the "depth" papers quote),
    ``input`` and ``output`` shapes, and ``features`` (the shape of the last 4-D
    activation, i.e. the feature map the classifier head sees).
    """
    if name not in CLASSIC:
        raise KeyError(f"unknown architecture {name!r}; choose from {', '.join(CLASSIC)}")
    year, builder, default_size = CLASSIC[name]
    size = image_size or default_size
    model = build_on_meta(builder)
    channels = 1 if isinstance(model, LeNet5) else 3
    table = layer_table(model, (1, channels, size, size))
    params = count_parameters(model)
    return {
        "name": name,
        "year": year,
        "params": params,
        "size_mb": params * 4 / 1e6,
        "weight_layers": int(table["type"].isin(["Conv2d", "Linear"]).sum()),
        "input": (1, channels, size, size),
        "features": head_input_shape(model, (1, channels, size, size)),
        "output": table["output shape"].iloc[-1],
    }


def architecture_table(names: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """:func:`describe` for several models (default: all of :data:`CLASSIC`), one row each."""
    rows = [describe(n) for n in (names or CLASSIC)]
    return pd.DataFrame(rows).set_index("name")


# --------------------------------------------------------------------------- Inception v2 (2015)
def factorised_pairs(channels: int) -> dict[str, tuple[nn.Module, nn.Module]]:
    """Inception v2's factorisations: name -> (one big convolution, the stack that replaces it).

    Every module keeps the size (``padding``) and maps ``channels`` to ``channels``, so both
    members of a pair turn ``(batch, channels, H, W)`` into ``(batch, channels, H, W)``.
    """
    def conv(k: tuple[int, int]) -> nn.Conv2d:
        return nn.Conv2d(channels, channels, k, padding=(k[0] // 2, k[1] // 2))

    return {
        "5x5 -> 3x3 + 3x3": (conv((5, 5)), nn.Sequential(conv((3, 3)), conv((3, 3)))),
        "3x3 -> 3x1 + 1x3": (conv((3, 3)), nn.Sequential(conv((3, 1)), conv((1, 3)))),
        "7x7 -> 1x7 + 7x1": (conv((7, 7)), nn.Sequential(conv((1, 7)), conv((7, 1)))),
    }


def receptive_field(module: nn.Module, channels: int, size: int = 15) -> tuple[int, int]:
    """Height and width of the input window that one output value depends on, measured by autograd.

    The gradient of the centre output with respect to the input is non-zero exactly on that
    window. The module's weights are set to 1 (on a copy) so that no path cancels by chance.
    """
    import copy

    probe = copy.deepcopy(module).float()
    for p in probe.parameters():
        nn.init.ones_(p)
    x = torch.zeros(1, channels, size, size, requires_grad=True)
    probe(x)[0, 0, size // 2, size // 2].backward()
    rows, cols = x.grad[0].abs().sum(0).nonzero(as_tuple=True)  # positions the centre output sees
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def factorisation_table(channels: int = 64) -> pd.DataFrame:
    """One row per factorisation: parameters of each side, the saving, and the measured receptive fields."""
    rows = []
    for name, (big, stack) in factorised_pairs(channels).items():
        rows.append({"factorisation": name, "params big": count_parameters(big),
                     "params factorised": count_parameters(stack),
                     "saving %": round(100 * (1 - count_parameters(stack) / count_parameters(big)), 1),
                     "field big": receptive_field(big, channels), "field factorised": receptive_field(stack, channels)})
    return pd.DataFrame(rows).set_index("factorisation")


# --------------------------------------------------------------------------- EfficientNet (2019)
def multiply_adds(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of the convolutions and dense layers for one forward pass (measured with hooks).

    A convolution does ``in_channels / groups * kh * kw`` multiply-adds per output value; a dense
    layer ``in_features`` per output value. Works on the ``meta`` device (only shapes are used).
    """
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    run_with_hooks(model, [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], hook, input_shape)
    return total


# The paper's coefficients (Tan and Le, 2019), found by a small grid search on B0 for phi = 1
# under the constraint alpha * beta**2 * gamma**2 ~ 2: each step of phi doubles the work.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # depth, width, resolution
# The released B0 ... B7 (width multiplier, depth multiplier, resolution), as in torchvision.
EFFICIENTNETS = {"B0": (1.0, 1.0, 224), "B1": (1.0, 1.1, 240), "B2": (1.1, 1.2, 260), "B3": (1.2, 1.4, 300),
                 "B4": (1.4, 1.8, 380), "B5": (1.6, 2.2, 456), "B6": (1.8, 2.6, 528), "B7": (2.0, 3.1, 600)}


def compound_scaling(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA) -> dict:
    """EfficientNet's rule: depth x alpha**phi, width x beta**phi, resolution x gamma**phi.

    The work of a convolution grows with depth, with the square of the width (channels in
    and out) and with the square of the resolution, so it grows by
    ``(alpha * beta**2 * gamma**2) ** phi``, about ``2 ** phi``.
    """
    return {"depth": alpha**phi, "width": beta**phi, "resolution": gamma**phi,
            "work": (alpha * beta**2 * gamma**2) ** phi}


def compound_scaling_table(names: Sequence[str] = tuple(EFFICIENTNETS)) -> pd.DataFrame:
    """The released EfficientNets measured on the meta device; their work relative to B0 next to the rule's
    ``(alpha * beta**2 * gamma**2) ** phi`` (1.92 ** phi)."""
    rows = []
    for phi, name in enumerate(names):
        width, depth, res = EFFICIENTNETS[name]
        model = build_on_meta(getattr(tvm, f"efficientnet_{name.lower()}"))
        rows.append({"model": f"EfficientNet-{name}", "phi": phi, "width x": width, "depth x": depth,
                     "resolution": res, "params": count_parameters(model),
                     "multiply_adds": multiply_adds(model, (1, 3, res, res))})
    table = pd.DataFrame(rows).set_index("model")
    table["work vs B0"] = table["multiply_adds"] / table["multiply_adds"].iloc[0]
    table["rule 1.92**phi"] = [compound_scaling(p)["work"] for p in table["phi"]]
    return table
