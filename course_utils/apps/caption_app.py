"""The caption app of notebook 10 (ipywidgets): upload or pick an image, choose the beam
size, read the caption and see where the model looked for each word.

``caption_app(model, vocab, examples)`` returns an ``ipywidgets.VBox``; display it as the
last line of a cell. Code (and tests) drive it through its attributes:

* ``app.controls["upload"]`` (FileUpload), ``app.controls["example"]`` (Dropdown),
  ``app.controls["beam"]`` (IntSlider): changing any of them captions the image again;
* ``app.trained_on`` (HTML): what the model was trained on, from its checkpoint config
  ("trained on synthetic shapes: photos get shape words; ..."), so nobody expects a
  model trained on shapes to describe a photo; empty when not given;
* ``app.caption`` (HTML): the caption, or a one-line error for a file that is not an image;
* ``app.view`` (Image): the attention figure as PNG, one panel per word;
* ``app.result``: the last caption as a dict ``{"source", "words", "alphas", "beam_size"}``,
  ``alphas (len(words), num_pixels)`` or None for a model without attention.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from PIL import Image

from course_utils.apps.upload import load_image_bytes, load_or_report, read_upload
from course_utils.captioning.inference import caption_images, require_encoder
from course_utils.files import png_bytes
from course_utils.vision.image_io import eval_transform, load_image

PathLike = Union[str, Path]


def attention_png(image: Image.Image, words: Sequence[str], alphas: Optional[torch.Tensor]) -> bytes:
    """The image with one attention panel per word (``plotting.plot_attention``), as PNG bytes;
    just the image when there is no attention."""
    import matplotlib.pyplot as plt

    from course_utils.plotting import plot_attention, show_images

    if alphas is not None and len(words):
        grid = math.isqrt(alphas.shape[1])
        fig = plot_attention(image, list(words), alphas, grid)
    else:
        fig = show_images([image], titles=[" ".join(words) or "(empty caption)"], ncols=1, size=4)
    data = png_bytes(fig, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return data


def caption_app(
    model: nn.Module,
    vocab: Any,
    examples: Union[Mapping[str, PathLike], Sequence[PathLike]] = (),
    transform: Optional[Callable[[Image.Image], torch.Tensor]] = None,
    image_size: int = 224,
    max_beam: int = 5,
    max_len: int = 20,
    trained_on: Optional[str] = None,
):
    """An app that captions an uploaded or picked image and shows the attention per word.

    ``model``: a ``Captioner`` with its encoder (it must read images, not cached features);
    ``examples``: images offered in the drop-down (paths, or a mapping label -> path);
    ``transform``: PIL image -> ``(3, H, W)`` tensor, by default ``eval_transform(image_size)``;
    ``trained_on``: the checkpoint config's ``trained_on``, shown above the caption.
    """
    import ipywidgets as widgets

    require_encoder(model)
    transform = transform or eval_transform(image_size)
    if not isinstance(examples, Mapping):
        examples = {Path(p).name: p for p in examples}
    options = {str(label): Path(p) for label, p in examples.items()}

    upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
    example = widgets.Dropdown(options=list(options), value=next(iter(options), None), description="example")
    beam = widgets.IntSlider(value=1, min=1, max=max_beam, step=1, description="beam size", continuous_update=False)
    caption = widgets.HTML()
    note = widgets.HTML(f"<i>model trained on {html.escape(trained_on)}</i>" if trained_on else "")
    view = widgets.Image(format="png")
    box = widgets.VBox([widgets.HBox([upload, example, beam]), note, caption, view])
    box.controls = {"upload": upload, "example": example, "beam": beam}
    box.caption, box.view, box.result, box.trained_on = caption, view, None, note
    current: dict[str, Any] = {"source": None, "load": None}  # the image being shown, and how to read it

    def show() -> None:
        if current["load"] is None:
            caption.value = "<i>upload an image or pick an example</i>"
            return
        image = load_or_report(current["load"], caption, view, box)
        if image is None:
            return
        result = caption_images(model, vocab, [image], transform, beam.value, max_len)[0]
        words, alphas = result.words, result.alphas
        kind = "greedy" if beam.value == 1 else f"beam search, beam size {beam.value}"
        caption.value = (f"<b>{html.escape(' '.join(words)) or '(empty caption)'}</b> "
                         f"<span style='color:#666'>({html.escape(current['source'])}, {kind})</span>")  # fmt: skip
        view.value = attention_png(image.resize(_display_size(image)), words, alphas)
        box.result = {"source": current["source"], "words": words, "alphas": alphas, "beam_size": beam.value}

    def on_upload(_change: Any = None) -> None:
        files = read_upload(upload.value)
        if files:
            name, content = files[-1]
            current.update(source=name, load=lambda: load_image_bytes(name, content))
            show()

    def on_example(_change: Any = None) -> None:
        if example.value is not None:
            path = options[example.value]
            current.update(source=example.value, load=lambda: load_image(path))
            show()

    upload.observe(on_upload, names="value")
    example.observe(on_example, names="value")
    beam.observe(lambda _change: show(), names="value")
    on_example()
    if current["load"] is None:
        show()
    return box


def _display_size(image: Image.Image, longest: int = 224) -> tuple[int, int]:
    """Shown size: the longest side at ``longest`` pixels (attention maps are coarse anyway)."""
    w, h = image.size
    scale = longest / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))
