"""The upload-and-predict app: a simulated upload (ipywidgets 7 or 8) shows classes with confidences."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

import course_utils.vision.transfer as transfer
from course_utils.apps.predict_app import imagenet_app, imagenet_classifier, predict_app, predict_image, scores_html
from course_utils.apps.upload import simulate_upload  # a browser upload, ipywidgets 7 or 8
from course_utils.vision import pretrained
from course_utils.vision.cnn import SmallCNN
from course_utils.vision.image_data import image_transforms

CLASSES = ["circle", "square", "triangle"]


def _png_bytes(size=(40, 30)):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def _small_model():
    torch.manual_seed(0)
    return SmallCNN(len(CLASSES), image_size=32, widths=(4, 4, 4), hidden=8)


def test_upload_shows_top_classes_with_confidence():
    model = _small_model()
    app = predict_app(model, CLASSES, image_transforms(32, train=False), k=3, cam_layer=model.features[2])
    assert app.result is None and "upload" in app.scores.value
    simulate_upload(app.controls["upload"], "my shape.png", _png_bytes())
    result = app.result
    assert result["source"] == "my shape.png"
    names = [n for n, _ in result["top"]]
    probs = [p for _, p in result["top"]]
    assert sorted(names) == sorted(CLASSES) and probs == sorted(probs, reverse=True)
    assert abs(sum(probs) - 1.0) < 1e-5
    html = app.scores.value
    for name, p in result["top"]:
        assert f"<b>{name}</b> {100 * p:.1f}%" in html
    assert app.view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["cam"].shape == (32, 32)


def test_corrupt_upload_gives_one_error_naming_the_file():
    model = _small_model()
    app = predict_app(model, CLASSES, image_transforms(32, train=False), cam_layer=model.features[2])
    simulate_upload(app.controls["upload"], "notes.png", b"this is not an image")
    assert "error" in app.scores.value and "notes.png" in app.scores.value
    assert app.result is None and app.view.value == b""


def test_examples_and_transfer_model_cam(monkeypatch, tmp_path):
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    net = transfer.TransferNet("mobilenet_v2", num_classes=3, mode="scratch")
    examples = {"array": np.zeros((32, 32, 3), np.uint8), "pil": Image.new("RGB", (50, 20), "red")}
    app = predict_app(net, CLASSES, image_transforms(32, train=False), examples=examples, k=2)
    assert app.result["source"] == "array" and len(app.result["top"]) == 2
    app.controls["example"].value = "pil"
    assert app.result["source"] == "pil" and "pil" in app.scores.value


def test_predict_image_needs_a_cam_and_matching_names():
    model = _small_model()
    image = Image.new("RGB", (32, 32))
    tf = image_transforms(32, train=False)
    try:
        predict_image(model, image, tf, CLASSES)
        raise AssertionError("expected a ValueError")
    except ValueError as err:
        assert "cam_layer" in str(err)
    try:
        predict_image(model, image, tf, CLASSES[:2], cam_layer=model.features[2])
        raise AssertionError("expected a ValueError")
    except ValueError as err:
        assert "3 outputs but 2 class names" in str(err)
    assert "50.0%" in scores_html([("a", 0.5)])


def _photo_png(name):
    from skimage import data as skdata

    buffer = io.BytesIO()
    Image.fromarray(getattr(skdata, name)()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_imagenet_app_names_uploaded_photos_offline(monkeypatch, tmp_path, capsys):
    """Offline (no hub cache, host unreachable): the bundled ImageNet network labels the uploads."""
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = imagenet_classifier("resnet50")
    assert "efficientnet_lite0" in capsys.readouterr().out  # the one line naming network and weights
    app = imagenet_app(model=model)
    assert "upload" in app.scores.value
    simulate_upload(app.controls["upload"], "chelsea.png", _photo_png("chelsea"))
    top = app.result["top"]
    assert len(top) == 5 and top[0][0] in {"tiger cat", "tabby", "Egyptian cat"}
    simulate_upload(app.controls["upload"], "coffee.png", _photo_png("coffee"))
    label, p = app.result["top"][0]
    assert label == "espresso" and p > 0.5
    assert "<b>espresso</b>" in app.scores.value
    view = Image.open(io.BytesIO(app.view.value))
    assert view.width > view.height  # photo and map side by side, titled; the photo is not squashed
    cam = app.result["cam"]
    assert cam.shape[1] / cam.shape[0] == pytest.approx(600 / 400, rel=0.02)  # coffee is 600 x 400: aspect kept
