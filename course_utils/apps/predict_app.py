"""Notebook 05's upload-and-predict app (ipywidgets): the classifier project report's Streamlit page, in a notebook.

Upload an image (or pick an example): the app shows the top classes with their
confidence and the class-activation map, i.e. where the evidence for the top class lies.

``predict_app(model, class_names, transform)`` returns an ``ipywidgets.VBox`` for any
classifier (the classes a notebook trained); ``imagenet_app()`` is the same app for an
ImageNet-pretrained network and its 1,000 classes. Display either as the last line of a
cell. Code and tests drive them through their attributes:

* ``app.controls["upload"]`` (FileUpload) and ``app.controls["example"]`` (Dropdown);
* ``app.scores`` (HTML): one line per class, name and confidence in %, or a one-line
  error for a file that is not an image;
* ``app.view`` (Image): the photo beside its class-activation map, each titled ("photo",
  "class-activation map for 'espresso'"), the photo's aspect ratio kept, as PNG;
* ``app.result``: the last prediction, ``{"source", "top": [(class, probability), ...], "cam"}``.

Uploaded files go through the kit's safe image loader (``images.load_image``), the same
one as files on disk (``apps.upload``, shared with the caption app of notebook 10).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch import nn

from course_utils.apps.upload import load_image_bytes, load_or_report, read_upload
from course_utils.basics.networks import model_device
from course_utils.files import png_bytes
from course_utils.vision.cam import grad_cam, overlay
from course_utils.vision.image_io import load_image, normalize
from course_utils.vision.transfer import top_k

Example = Union[str, Path, Image.Image, np.ndarray]


def predict_image(
    model: nn.Module,
    image: Image.Image,
    transform: Callable[[Image.Image], torch.Tensor],
    class_names: Sequence[str],
    k: int = 3,
    cam_layer: Optional[nn.Module] = None,
) -> dict[str, Any]:
    """Top-``k`` classes and activation map of one RGB ``image``.

    Models with a ``cam`` method (``transfer.TransferNet``) give their exact class
    activation map; any other CNN needs ``cam_layer`` (e.g. its last convolution block)
    for Grad-CAM. Returns ``{"top": [(name, probability), ...], "cam": (H, W) in [0, 1]}``
    where ``H, W`` is the size of the transformed image.
    """
    device = model_device(model)
    x = transform(image).to(device)  # (3, H, W)
    if hasattr(model, "cam"):
        cam, _, probs = model.cam(x)
    elif cam_layer is not None:
        cam, _, probs = grad_cam(model, cam_layer, x)
    else:
        raise ValueError(f"{type(model).__name__} has no cam() method: pass cam_layer (its last conv block)")
    if len(probs) != len(class_names):
        raise ValueError(f"the model has {len(probs)} outputs but {len(class_names)} class names were given")
    return {"top": top_k(probs.cpu(), class_names, k), "cam": cam.cpu()}


def scores_html(top: Sequence[tuple[str, float]]) -> str:
    """One line per class: a bar, the name and the confidence in %, best first."""
    rows = []
    for name, p in top:
        bar = f"<span style='display:inline-block;width:{p * 150:.0f}px;height:0.8em;background:#4c72b0'></span>"
        rows.append(f"<div>{bar} <b>{html.escape(name)}</b> {100 * p:.1f}%</div>")
    return "".join(rows)


def side_by_side_png(image: Image.Image, cam: torch.Tensor, label: str, height: int = 224) -> bytes:
    """PNG of the photo (left) and its class-activation map for ``label`` laid over it (right).

    Both are ``height`` pixels high with the photo's aspect ratio; ``cam (h, w)`` is stretched
    to the photo (it was computed on the photo as the model saw it) and each panel is titled.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    width = max(1, round(image.width * height / image.height))
    shown = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR))  # (height, width, 3)
    aspect = width / height
    fig, axes = plt.subplots(1, 2, figsize=(2 * 3.0 * aspect + 0.4, 3.4))
    for ax, picture, title in zip(axes, (shown, overlay(shown, cam)), ("photo", f"class-activation map for {label!r}")):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    data = png_bytes(fig, dpi=100)
    plt.close(fig)
    return data


def keep_aspect_transform(size: int = 224, max_size: int = 448) -> Callable[[Image.Image], torch.Tensor]:
    """PIL image -> ``(3, H, W)`` ImageNet-normalised, shorter side ``size`` and the aspect ratio kept.

    No crop: a network that ends with global average pooling takes any size, and its
    class-activation map then covers the whole photo (``max_size`` caps the longer side).
    """
    from torchvision import transforms as T

    return T.Compose([T.Resize(size, max_size=max_size, antialias=True), T.ToTensor(), normalize()])


def _as_loader(example: Example) -> Callable[[], Image.Image]:
    if isinstance(example, Image.Image):
        return lambda: example.convert("RGB")
    if isinstance(example, np.ndarray):
        return lambda: Image.fromarray(example).convert("RGB")
    return lambda: load_image(example)


def predict_app(
    model: nn.Module,
    class_names: Sequence[str],
    transform: Callable[[Image.Image], torch.Tensor],
    examples: Optional[Mapping[str, Example]] = None,
    k: int = 3,
    cam_layer: Optional[nn.Module] = None,
):
    """An app that classifies an uploaded or picked image and shows its activation map.

    ``transform``: PIL image -> ``(3, H, W)`` tensor, the evaluation transform the model
    was trained with; ``examples``: label -> path, PIL image or ``(H, W, 3)`` uint8 array,
    offered in a drop-down (the first one is shown at start).
    """
    import ipywidgets as widgets

    options = {str(label): _as_loader(ex) for label, ex in (examples or {}).items()}
    upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
    example = widgets.Dropdown(options=list(options), value=next(iter(options), None), description="example")
    scores = widgets.HTML()
    view = widgets.Image(format="png")
    box = widgets.VBox([widgets.HBox([upload, example]), scores, view])
    box.controls = {"upload": upload, "example": example}
    box.scores, box.view, box.result = scores, view, None

    def show(source: str, load: Callable[[], Image.Image]) -> None:
        image = load_or_report(load, scores, view, box)
        if image is None:
            return
        out = predict_image(model, image, transform, class_names, k, cam_layer)
        scores.value = f"<div style='color:#666'>{html.escape(source)}</div>" + scores_html(out["top"])
        view.value = side_by_side_png(image, out["cam"], out["top"][0][0])
        box.result = {"source": source, **out}

    def on_upload(_change: Any = None) -> None:
        files = read_upload(upload.value)
        if files:
            name, content = files[-1]
            show(name, lambda: load_image_bytes(name, content))

    def on_example(_change: Any = None) -> None:
        if example.value is not None:
            show(example.value, options[example.value])

    upload.observe(on_upload, names="value")
    example.observe(on_example, names="value")
    if options:
        on_example()
    else:
        scores.value = "<i>upload an image</i>"
    return box


def imagenet_classifier(network: str = "resnet50") -> nn.Module:
    """An ImageNet classifier with its exact class-activation map (``transfer.TransferNet``, frozen).

    ``network``'s torchvision weights when they can be had, else the bundled EfficientNet-Lite0
    (``vision.pretrained.load_imagenet`` prints which); ``model.class_names`` holds the 1,000 names.
    """
    from course_utils.vision.transfer import TransferNet

    return TransferNet(network, num_classes=None, mode="frozen").eval()


def imagenet_app(
    network: str = "resnet50", examples: Optional[Mapping[str, Example]] = None, k: int = 5, model: nn.Module = None
):
    """The upload-and-predict app for the 1,000 ImageNet classes (``imagenet_classifier(network)``,
    or ``model``, a ``TransferNet`` with its ImageNet head), top ``k`` with confidences."""
    model = model if model is not None else imagenet_classifier(network)
    return predict_app(model, model.class_names, keep_aspect_transform(), examples=examples, k=k)
