"""Uploads through ipywidgets' FileUpload: both value formats (ipywidgets 7, which Colab renders,
and ipywidgets 8), the safe image loader behind them, and the two apps fed through the real
widget of whichever ipywidgets is installed (CI's oldest environment has 7, the main one 8)."""

from __future__ import annotations

import datetime
import io

import ipywidgets
import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.apps.upload import load_image_bytes, read_upload, simulate_upload
from course_utils.vision.image_io import ImageError

IPYWIDGETS_MAJOR = int(ipywidgets.__version__.split(".")[0])


def image_bytes(fmt: str = "PNG", size=(40, 30), mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def value_v7(*files: tuple[str, bytes]) -> dict:
    """What ipywidgets 7's FileUpload.value holds: name -> {"metadata", "content": bytes}."""
    return {name: {"metadata": {"name": name, "type": "image/png", "size": len(content), "lastModified": 0},
                   "content": content} for name, content in files}  # fmt: skip


def value_v8(*files: tuple[str, bytes]) -> tuple:
    """What ipywidgets 8's FileUpload.value holds: a tuple of dicts, content a memoryview."""
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return tuple({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
                  "last_modified": when} for name, content in files)  # fmt: skip


@pytest.mark.parametrize("make_value", [value_v7, value_v8], ids=["ipywidgets7", "ipywidgets8"])
def test_read_upload_reads_both_formats_in_order(make_value):
    a, b = image_bytes("PNG"), image_bytes("JPEG")
    files = read_upload(make_value(("a.png", a), ("b photo.jpg", b)))
    assert files == [("a.png", a), ("b photo.jpg", b)]
    assert all(type(content) is bytes for _, content in files)  # a memoryview is copied out


@pytest.mark.parametrize("empty", [{}, (), None], ids=["v7-empty", "v8-empty", "none"])
def test_read_upload_of_nothing_is_empty(empty):
    assert read_upload(empty) == []


def test_upload_without_a_name_gets_one():
    content = image_bytes()
    assert read_upload(({"content": memoryview(content)},)) == [("upload", content)]


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGB"), ("JPEG", "L"), ("PNG", "RGBA"), ("BMP", "P")])
def test_load_image_bytes_gives_rgb(fmt, mode):
    image = load_image_bytes(f"photo.{fmt.lower()}", image_bytes(fmt, size=(40, 30), mode=mode))
    assert image.mode == "RGB" and image.size == (40, 30)


def test_load_image_bytes_without_suffix_reads_the_content():
    assert load_image_bytes("camera upload", image_bytes("PNG")).size == (40, 30)


@pytest.mark.parametrize("content", [b"this is not an image", image_bytes("PNG")[:60], b""],
                         ids=["text", "truncated", "empty"])  # fmt: skip
def test_corrupt_upload_names_the_uploaded_file_not_the_temporary_copy(content):
    with pytest.raises(ImageError) as err:
        load_image_bytes("holiday.png", content)
    message = str(err.value)
    assert message.startswith("holiday.png: ") and "upload.png" not in message and "/tmp" not in message


def test_the_installed_file_upload_widget_is_read():
    widget = ipywidgets.FileUpload(accept="image/*", multiple=False)
    assert read_upload(widget.value) == []
    content = image_bytes()
    simulate_upload(widget, "my photo.png", content)
    assert read_upload(widget.value) == [("my photo.png", content)]


def test_predict_app_takes_an_upload_from_the_installed_ipywidgets():
    from course_utils.apps.predict_app import predict_app
    from course_utils.vision.cnn import SmallCNN
    from course_utils.vision.image_data import image_transforms

    torch.manual_seed(0)
    model = SmallCNN(3, image_size=32, widths=(4, 4, 4), hidden=8)
    app = predict_app(model, ["circle", "square", "triangle"], image_transforms(32, train=False),
                      cam_layer=model.features[2])  # fmt: skip
    simulate_upload(app.controls["upload"], "shape.png", image_bytes())
    assert app.result["source"] == "shape.png" and len(app.result["top"]) == 3
    simulate_upload(app.controls["upload"], "notes.png", b"not an image")
    assert app.result is None and "notes.png" in app.scores.value and "error" in app.scores.value


def test_caption_app_takes_an_upload_from_the_installed_ipywidgets():
    from course_utils.apps.caption_app import caption_app
    from course_utils.captioning.captioner import build_captioner
    from course_utils.sequence.vocab import Vocabulary

    vocab = Vocabulary(list(Vocabulary.SPECIALS) + ["red", "circle"])
    torch.manual_seed(0)
    config = dict(decoder="attention", vocab_size=len(vocab), encoder="small_cnn", grid=2, channels=(4, 8),
                  embed_dim=4, hidden_dim=8, attention_dim=4, dropout=0.0)
    model = build_captioner(config).eval()
    app = caption_app(model, vocab, [], image_size=32, max_len=3)
    simulate_upload(app.controls["upload"], "scene.png", image_bytes())
    assert app.result["source"] == "scene.png" and len(app.result["words"]) <= 3
    assert bytes(app.view.value).startswith(b"\x89PNG")
