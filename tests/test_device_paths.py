"""Device bugs on the paths that decide with data, caught on a CPU (issue 17).

``test_devices.py`` plays a GPU with the ``meta`` device, which holds no numbers: beam
search (``topk`` results used as indices, ``nonzero``), the loop that stops at ``<end>``,
the ``caption`` command and the feature cache cannot run there. Here the stand-in is
``accelerator``'s: tensors that say they are on another device and really compute, and
that refuse, as CUDA does, to meet CPU tensors in one operation or to reach numpy.
Each test also checks that the results equal the CPU run's: the stand-in changes where
tensors say they are, never the numbers.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from accelerator import DeviceMixing, accelerator
from PIL import Image
from test_devices import assert_on_cpu
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import course_utils.captioning.train as train
from course_utils.caption_data.cache import FeatureCache
from course_utils.caption_data.datasets import CaptionDataset, EvalDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.synth import generate
from course_utils.captioning.attention import ShowAttendTell
from course_utils.captioning.beam_fast import fast_beam_search
from course_utils.captioning.captioner import build_captioner
from course_utils.captioning.checkpoint import save_checkpoint
from course_utils.captioning.decoding import beam_search, greedy_decode
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision import cam
from course_utils.vision.classify import predict
from course_utils.vision.cnn import SmallCNN
from course_utils.vision.image_io import eval_transform
from course_utils.vision.transfer import TransferNet


# --------------------------------------------------------------------------- the stand-in itself
def test_the_stand_in_computes_and_fails_like_a_gpu():
    with accelerator() as device:
        layer = nn.Linear(3, 2).to(device)
        with pytest.raises(RuntimeError, match="same device"):
            layer(torch.ones(1, 3))  # an input left on the CPU
        out = layer(torch.ones(4, 3).to(device))
        assert out.device.type == device.type
        with pytest.raises(TypeError, match="numpy"):
            np.asarray(out.detach())  # a device tensor handed to numpy
        top = out.topk(1, dim=1).indices[:, 0]  # data-dependent ops run, and stay on the device
        assert out[torch.arange(4, device=device), top].device == device
        assert (out > -1e9).nonzero().device == device
        assert float(out.detach().sum()) == pytest.approx(float(out.detach().cpu().sum()))
        out = out * torch.tensor(2.0)  # a 0-dim CPU tensor is a scalar, as on CUDA
        with pytest.raises(DeviceMixing, match="indices"):
            torch.zeros(4)[top]  # device indices into a CPU tensor


# --------------------------------------------------------------------------- decoding
VOCAB, ENC, P, START, END = 20, 12, 9, 1, 2


def decoder(end_bias: float) -> ShowAttendTell:
    """A random decoder whose captions end at different steps, or not at all (``end_bias`` moves ``<end>``)."""
    torch.manual_seed(0)
    model = ShowAttendTell(VOCAB, encoder_dim=ENC, embed_dim=8, hidden_dim=16, attention_dim=10).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0)
        model.fc.bias[END] += end_bias
    return model


@pytest.mark.parametrize("search, end_bias", [(greedy_decode, 0.0), (beam_search, -1.0), (fast_beam_search, -1.0)],
                         ids=["greedy", "reference", "fast"])  # fmt: skip
def test_decoding_on_the_device_gives_the_cpu_captions_on_the_cpu(search, end_bias):
    features = torch.randn(6, P, ENC, generator=torch.Generator().manual_seed(1))
    kwargs = {} if search is greedy_decode else {"beam_size": 3}
    expected = search(decoder(end_bias), features, START, END, max_len=8, **kwargs)
    assert len({c.finished for c in expected}) == 2  # some captions end, others reach max_len
    with accelerator() as device:
        captions = search(decoder(end_bias).to(device), features.to(device), START, END, max_len=8, **kwargs)
        assert_on_cpu(captions, search.__name__)
    assert [c.ids for c in captions] == [c.ids for c in expected]
    for got, want in zip(captions, expected):
        assert torch.allclose(got.alphas, want.alphas, atol=1e-5) and got.score == pytest.approx(want.score, abs=1e-4)


# --------------------------------------------------------------------------- new images: the app and the command
@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(list(Vocabulary.SPECIALS) + ["red", "blue", "circle", "square", "a"])


def tiny_captioner(vocab):
    torch.manual_seed(0)
    config = dict(decoder="attention", vocab_size=len(vocab), encoder="small_cnn", grid=2, channels=[4, 8],
                  embed_dim=8, hidden_dim=16, attention_dim=8, dropout=0.0, image_size=32)  # fmt: skip
    model = build_captioner(config).eval()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0, 0.5)  # varied captions, some of which end
    return model, config


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = folder / f"p{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def app_results(model, vocab, pictures):
    """The caption app's result with greedy decoding, then with beam size 3."""
    from course_utils.apps.caption_app import caption_app

    app = caption_app(model, vocab, pictures, image_size=32, max_len=6)
    greedy = app.result
    app.controls["beam"].value = 3
    assert app.view.value[:4] == b"\x89PNG"
    return greedy, app.result


def test_caption_app_on_the_device(vocab, pictures):
    model, _ = tiny_captioner(vocab)
    expected = app_results(model, vocab, pictures)
    with accelerator() as device:
        got = app_results(copy.deepcopy(model).to(device), vocab, pictures)
        assert_on_cpu(got, "the caption app's results")
    for g, e in zip(got, expected):
        assert g["words"] == e["words"] and torch.allclose(g["alphas"], e["alphas"], atol=1e-5)


def caption_command(argv: list[str], device: str) -> int:
    """``python -m course_utils caption ARGV`` with ``--device`` set after parsing (it accepts real devices only)."""
    import argparse

    from course_utils.cli import caption

    parser = argparse.ArgumentParser()
    caption.add_arguments(parser)
    args = parser.parse_args(argv)
    args.device = device
    return caption.run(args)


def test_caption_command_on_the_device(vocab, pictures, tmp_path, capsys):
    """The function behind ``python -m course_utils caption``, on the stand-in device."""
    model, config = tiny_captioner(vocab)
    ckpt = save_checkpoint(tmp_path / "tiny.pt", model=model.state_dict(), config=config, vocab=list(vocab.itos))
    args = [*map(str, pictures), "--checkpoint", str(ckpt), "--beam", "2", "--max-len", "6", "--batch-size", "2"]
    assert caption_command([*args, "--out", str(tmp_path / "cpu")], "cpu") == 0
    expected = [line.split("   [")[0] for line in capsys.readouterr().out.splitlines() if ": " in line]
    with accelerator() as device:
        code = caption_command([*args, "--out", str(tmp_path / "dev")], device.type)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert [line.split("   [")[0] for line in out.splitlines() if ": " in line] == expected
    assert len(list((tmp_path / "dev").glob("*_attention.png"))) == len(pictures)


# --------------------------------------------------------------------------- classifier: predict and CAM
def test_predict_on_the_device():
    torch.manual_seed(0)
    model = SmallCNN(3, image_size=16, widths=(4, 4, 4), hidden=8, dropout=0.0).eval()
    loader = DataLoader(TensorDataset(torch.rand(10, 3, 16, 16), torch.arange(10) % 3), batch_size=4)
    labels, probs = predict(model, loader)
    with accelerator() as device:
        got_labels, got_probs = predict(copy.deepcopy(model), loader, device)
    assert isinstance(got_probs, np.ndarray) and np.array_equal(got_labels, labels)
    assert np.allclose(got_probs, probs, atol=1e-6)


def test_cam_and_grad_cam_on_the_device():
    torch.manual_seed(0)
    small = SmallCNN(3, image_size=32, widths=(4, 4, 4), hidden=8)
    net = TransferNet("mobilenet_v2", num_classes=3, mode="scratch", weights=None)
    image = torch.rand(3, 32, 32)
    expected = (cam.activations(small, small.features[1], image[None]), cam.grad_cam(small, small.features[2], image),
                net.cam(image))  # fmt: skip
    with accelerator() as device:
        small_dev, net_dev = copy.deepcopy(small).to(device), copy.deepcopy(net).to(device)
        got = (cam.activations(small_dev, small_dev.features[1], image[None]),
               cam.grad_cam(small_dev, small_dev.features[2], image), net_dev.cam(image))  # fmt: skip
        assert_on_cpu(got, "activations, grad_cam, TransferNet.cam")
        picture = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
        assert cam.overlay(picture, got[1][0]).shape == (32, 32, 3)
    assert torch.allclose(got[0], expected[0], atol=1e-6)
    for g, e in zip(got[1:], expected[1:]):
        assert torch.allclose(g[0], e[0], atol=1e-5) and g[1] == e[1] and torch.allclose(g[2], e[2], atol=1e-6)


# --------------------------------------------------------------------------- captioner: feature cache and training
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data = load_dataset(generate(tmp_path_factory.mktemp("synth") / "tiny", n_images=20, image_size=32, seed=3))
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
    return data, vocab


class GridEncoder(nn.Module):
    """conv -> 4 x 4 grid: ``(batch, 3, 32, 32)`` -> ``(batch, 8, 4, 4)``."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.pool = nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(4)

    def forward(self, images):
        return self.pool(self.conv(images))


def test_feature_cache_build_on_the_device(tiny, tmp_path):
    data, _ = tiny
    expected = FeatureCache(tmp_path / "cpu", data, "train", "grid", image_size=32).build(
        GridEncoder(), progress=False, num_workers=0)  # fmt: skip
    with accelerator() as device:
        encoder = GridEncoder()
        cache = FeatureCache(tmp_path / "dev", data, "train", "grid", image_size=32).build(
            encoder, device=device, progress=False, num_workers=0)  # fmt: skip
    key = data.images("train")[0]
    assert cache[key].shape == (16, 8) and np.array_equal(cache[key], expected[key])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_fit_step_on_the_device(tiny):
    data, vocab = tiny
    tf = eval_transform(32)
    config = {"decoder": "attention", "vocab_size": len(vocab), "encoder": "small_cnn", "grid": 4,
              "channels": [4, 8], "embed_dim": 8, "hidden_dim": 16, "attention_dim": 8}  # fmt: skip
    train_set = train.GroupedCaptions(CaptionDataset(data, "train", vocab, transform=tf), captions_per_image=1)
    val_set = CaptionDataset(data, "val", vocab, transform=tf)
    cfg = train.TrainConfig(epochs=1, batch_size=16, bleu_images=2, samples=1, progress=False, device="cpu")
    torch.manual_seed(0)
    expected = train.fit(build_captioner(config), train_set, val_set, vocab, cfg, log=lambda line: None)
    with accelerator():
        torch.manual_seed(0)
        model = build_captioner(config)
        history = train.fit(model, train_set, val_set, vocab, cfg.__class__(**{**cfg.__dict__, "device": "meta"}),
                            eval_set=EvalDataset(data, "val", transform=tf), log=lambda line: None)  # fmt: skip
        assert all(p.device.type == "meta" for p in model.parameters())
    assert history["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-4)
    assert history["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-4)
