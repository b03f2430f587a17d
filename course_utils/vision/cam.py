"""What did the network look at? Feature maps, class activation maps and Grad-CAM (notebooks 04-05).

* :func:`activations`: the output of any layer for a batch (the "feature maps" of
  the CNN slides, and the "visualisation of internal activations" of the app in the
  classifier project report).
* :func:`class_activation_map` (CAM, Zhou et al. 2016): for networks that end with
  global average pooling and one linear layer (ResNet, MobileNet, the transfer models
  of notebook 05), the score of class ``k`` is a weighted sum of the channel means,
  so the same weights applied to the maps *before* pooling show where the evidence is:
  ``cam_k(y, x) = sum_c w[k, c] * A[c, y, x]`` (:func:`weighted_maps`).
* :func:`grad_cam` (Selvaraju et al. 2017) works for any CNN (the flatten + dense
  network of notebook 04 too): channel weights are the spatial means of the gradient
  of the class score with respect to the maps, summed over the maps by the same
  :func:`weighted_maps`; for a global-average-pooling network it gives the CAM again, up
  to a positive factor.

Written by hand (rather than with a library such as ``pytorch-grad-cam``) because the
notebooks teach both methods in a few lines.

Devices: the image goes to the model's device (a GPU after training) and every result
comes back on the CPU, where numpy and matplotlib can read it.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.basics.networks import evaluating, model_device
from course_utils.plotting import to_numpy_image


def activations(model: nn.Module, layer: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Output of ``layer`` when ``model`` runs on ``images (batch, 3, H, W)``, e.g. ``(batch, C, h, w)``, on the CPU."""
    store: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: store.append(out.detach()))
    try:
        with evaluating(model), torch.no_grad():
            model(images.to(model_device(model)))
    finally:
        handle.remove()
    if not store:
        raise ValueError(f"layer {type(layer).__name__} did not run in the forward pass of {type(model).__name__}")
    return store[0].cpu()


def weighted_maps(weights: torch.Tensor, feature_maps: torch.Tensor) -> torch.Tensor:
    """One map from ``C`` maps: ``weights (C,)``, ``feature_maps (C, h, w)`` -> ``(h, w)``.

    ``out[y, x] = sum_c weights[c] * feature_maps[c, y, x]``: the step CAM and Grad-CAM
    share; they differ only in where the weights come from.
    """
    return torch.einsum("c,chw->hw", weights, feature_maps)


def class_activation_map(feature_maps: torch.Tensor, fc_weight: torch.Tensor, class_idx: int) -> torch.Tensor:
    """CAM of one image: ``feature_maps (C, h, w)``, ``fc_weight (num_classes, C)`` -> ``(h, w)``.

    ``cam[y, x] = sum_c fc_weight[class_idx, c] * feature_maps[c, y, x]`` (not normalised).
    """
    if feature_maps.ndim != 3 or fc_weight.ndim != 2 or fc_weight.shape[1] != feature_maps.shape[0]:
        raise ValueError(
            f"expected feature_maps (C, h, w) and fc_weight (num_classes, C), got "
            f"{tuple(feature_maps.shape)} and {tuple(fc_weight.shape)}"
        )
    return weighted_maps(fc_weight[class_idx], feature_maps)


def normalize_map(cam: torch.Tensor) -> torch.Tensor:
    """Keep the positive evidence (ReLU) and scale to [0, 1]; an all-zero map stays zero."""
    cam = cam.clamp(min=0)
    top = cam.max()
    return cam / top if top > 0 else cam


def upsample_map(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(h, w)`` -> ``(H, W)`` by bilinear interpolation, to lay a map over the input image."""
    return F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def grad_cam(
    model: nn.Module, layer: nn.Module, image: torch.Tensor, class_idx: Optional[int] = None
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """Grad-CAM of one image ``(3, H, W)`` (or ``(1, 3, H, W)``) at the output of ``layer``.

    Returns ``(cam (H, W) in [0, 1], class_idx, probs (num_classes,))`` on the CPU;
    ``class_idx`` defaults to the predicted class. The model runs in eval mode; its
    parameters are not changed and their ``.grad`` is left untouched.
    """
    images = (image if image.ndim == 4 else image[None]).to(model_device(model))  # (1, 3, H, W)
    store: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _i: tuple, out: torch.Tensor) -> None:
        store["maps"] = out  # (1, C, h, w), part of the graph

    handle = layer.register_forward_hook(keep)
    try:
        with evaluating(model), torch.enable_grad():
            logits = model(images)  # (1, num_classes)
            probs = logits[0].detach().softmax(0).cpu()  # (num_classes,)
            if class_idx is None:
                class_idx = int(probs.argmax())
            maps = store["maps"]
            (grads,) = torch.autograd.grad(logits[0, class_idx], maps)  # (1, C, h, w)
    finally:
        handle.remove()
    weights = grads[0].mean(dim=(1, 2))  # (C,): how much each channel pushes the class score
    cam = weighted_maps(weights, maps[0].detach()).cpu()  # (h, w)
    return normalize_map(upsample_map(cam, tuple(images.shape[-2:]))), class_idx, probs


def overlay(image: np.ndarray, cam: torch.Tensor, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Heat map ``cam (h, w)`` in [0, 1] over ``image (H, W, 3)`` uint8 -> ``(H, W, 3)`` uint8."""
    import matplotlib

    image = np.asarray(image)
    cam = torch.as_tensor(cam).detach().cpu().float()  # a map computed on a GPU comes back here
    if tuple(cam.shape) != image.shape[:2]:
        cam = upsample_map(cam, image.shape[:2])
    heat = matplotlib.colormaps[cmap](cam.clamp(0, 1).numpy())[..., :3] * 255  # (H, W, 3)
    return (alpha * heat + (1 - alpha) * image[..., :3]).round().clip(0, 255).astype(np.uint8)


def plot_activation_maps(
    images: Sequence[Any], cams: Sequence[Any], titles: Optional[Sequence[str]] = None, alpha: float = 0.45
) -> plt.Figure:
    """Each image (top row) above its activation map laid over it (bottom row, ``jet``: red = evidence).

    ``images``: ``(H, W, 3)`` uint8 arrays (or anything :func:`to_numpy_image` reads);
    ``cams``: ``(h, w)`` maps in [0, 1], resized to the image if needed.
    """
    n = len(images)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n, 5.0), squeeze=False)
    for i in range(n):
        img = to_numpy_image(images[i])
        if img.dtype != np.uint8:
            img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        axes[0, i].imshow(img)
        axes[1, i].imshow(overlay(img, cams[i], alpha=alpha))
        axes[0, i].set_title(titles[i] if titles else "", fontsize=9)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.tight_layout()
    return fig
