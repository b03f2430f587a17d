"""Encoders: grid shapes, freezing, weights from a file, and the offline fallback (no network)."""

import socket
import urllib.error
import urllib.request

import pytest
import torch

from course_utils.captioning.encoders import PretrainedEncoder, SmallCNNEncoder, build_encoder
from course_utils.vision import pretrained
from course_utils.vision.pretrained import load_backbone


def test_small_cnn_grid_features():
    enc = SmallCNNEncoder(grid=8)
    out = enc(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 64, enc.encoder_dim)  # (batch, num_pixels, encoder_dim)
    assert SmallCNNEncoder(grid=4, channels=(8, 16))(torch.randn(1, 3, 32, 32)).shape == (1, 16, 16)


def test_small_cnn_regions_are_row_major_and_local():
    enc = SmallCNNEncoder(grid=4, channels=(8, 16, 16)).eval()
    a = torch.zeros(1, 3, 32, 32)
    b = a.clone()
    b[:, :, 26:, 26:] = 3.0  # change the bottom-right corner only
    with torch.no_grad():
        diff = (enc(a) - enc(b)).abs().sum(2)[0]  # (num_pixels,)
    assert int(diff.argmax()) == 15  # last region = bottom-right
    assert float(diff[0]) == 0.0  # the top-left region does not see it


@pytest.mark.parametrize("name, dim", [("resnet50", 2048), ("mobilenet_v2", 1280)])
def test_pretrained_encoder_grid_and_freezing(name, dim):
    enc = PretrainedEncoder(name, grid=3, weights=None)
    assert enc.encoder_dim == dim
    enc.train()
    with torch.no_grad():
        assert enc(torch.randn(2, 3, 96, 96)).shape == (2, 9, dim)
    assert not any(p.requires_grad for p in enc.parameters())
    assert all(not b.training for b in enc.blocks)  # frozen batch norms keep their statistics
    enc.fine_tune(1)
    trained = [i for i, b in enumerate(enc.blocks) if any(p.requires_grad for p in b.parameters())]
    assert trained == [len(enc.blocks) - 1]
    enc.train()
    assert enc.blocks[-1].training and not enc.blocks[0].training
    enc.fine_tune(-1)
    assert all(p.requires_grad for p in enc.parameters())


def test_offline_encoder_is_the_bundled_imagenet_network(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: True)  # the host seems up, the download fails
    enc = PretrainedEncoder("resnet50", grid=7)
    out = [line for line in capsys.readouterr().out.strip().splitlines() if not line.startswith("Downloading")]
    assert len(out) == 1 and "efficientnet_lite0" in out[0] and "Name or service not known" in out[0]
    assert (enc.name, enc.encoder_dim) == ("efficientnet_lite0", 1280) and "efficientnet-lite0" in enc.weights
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 224, 224)).shape == (1, 49, 1280)


def test_encoder_cut_after_a_named_block():
    enc = PretrainedEncoder("efficientnet_lite0:blocks.4", grid=14, quiet=True)  # a 14 x 14 map at 224 px
    assert (enc.name, enc.encoder_dim) == ("efficientnet_lite0:blocks.4", 112)
    with torch.no_grad():
        assert enc(torch.randn(1, 3, 224, 224)).shape == (1, 196, 112)
    full = PretrainedEncoder("efficientnet_lite0", quiet=True)
    torch.testing.assert_close(enc.blocks[1].weight, full.blocks[1].weight)  # conv_stem: same weights
    assert len(enc.blocks) == len(full.blocks) - 4
    with pytest.raises(ValueError, match="no block 'layer3'"):
        PretrainedEncoder("efficientnet_lite0:layer3", quiet=True)


def test_weights_from_a_local_file(tmp_path):
    torch.manual_seed(0)
    source = load_backbone("mobilenet_v2", None)
    path = tmp_path / "mobilenet.pt"
    torch.save(source.state_dict(), path)
    loaded = load_backbone("mobilenet_v2", path)
    torch.testing.assert_close(loaded.features[0][0].weight, source.features[0][0].weight)
    wrong = tmp_path / "wrong.pt"
    torch.save({"weight": torch.zeros(2)}, wrong)
    with pytest.raises(ValueError, match="wrong.pt: not a mobilenet_v2 state dict"):
        load_backbone("mobilenet_v2", wrong)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone("mobilenet_v2", tmp_path / "missing.pt")


def test_unknown_encoder():
    with pytest.raises(ValueError, match="vgg16 is not supported|'vgg16' is not supported"):
        build_encoder("vgg16")
    assert set(pretrained.BACKBONES) == {"resnet50", "resnet101", "resnet152", "mobilenet_v2", "efficientnet_lite0"}
