"""GPU bugs caught without a GPU: models on the ``meta`` device stand in for a model on CUDA.

Two device bugs reach students on their first GPU run (issue 17): an input left on the
CPU while the model is on the GPU ("Expected all tensors to be on the same device"),
and a GPU tensor handed to numpy or matplotlib ("can't convert cuda:0 device type
tensor to numpy"). A model on PyTorch's ``meta`` device fails in both ways too: meta
tensors have shapes but no data, and mixing them with CPU tensors is refused.

What a real GPU allows and meta does not is reading numbers back (``.cpu()``,
``.item()``, ``float()``, ``.tolist()``); :func:`second_device` lets meta tensors do it,
reading zeros. Inside it, a function that keeps its tensors on the model's device and
hands back CPU results runs to the end; one that forgets either fails as on a GPU.

Reuse (pytest puts ``tests/`` on the import path)::

    from test_devices import assert_on_cpu, second_device

    def test_my_function_on_a_gpu(monkeypatch):
        with second_device(monkeypatch) as device:
            model = build_model().to(device)
            assert_on_cpu(my_function(model, cpu_input))
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import numpy as np
import pytest
import torch
from torch import nn

import course_utils.captioning.train as train
from course_utils.caption_data.datasets import CaptionDataset, EvalDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.synth import generate
from course_utils.captioning.captioner import build_captioner
from course_utils.captioning.checkpoint import load_checkpoint
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision import cam
from course_utils.vision.cnn import SmallCNN
from course_utils.vision.image_io import eval_transform
from course_utils.vision.transfer import TransferNet

DEVICE = torch.device("meta")


def _read_back(tensor: torch.Tensor, dtype: Any = None) -> torch.Tensor:
    """What a meta tensor reads as on the CPU: the values it was copied from, else zeros."""
    source = getattr(tensor, "_stand_in_values", None)
    if source is None:
        return torch.zeros(tensor.shape, dtype=dtype or tensor.dtype)
    return source.to(dtype) if dtype is not None else source


@contextlib.contextmanager
def second_device(monkeypatch: pytest.MonkeyPatch) -> Iterator[torch.device]:
    """The ``meta`` device as a stand-in GPU whose numbers can be read back.

    Inside the block, copying a meta tensor to the CPU (``.cpu()``, ``.to("cpu")``) and
    ``.item()``, ``float()``, ``int()``, ``bool()``, ``.tolist()`` read the values it was
    copied from when it came from the CPU (caption lengths, say), and zeros when it was
    computed on meta (which computes shapes only). Everything else about meta is kept: a
    meta tensor meeting a CPU tensor in one operation raises, and numpy refuses it.
    """
    real_cpu, real_to = torch.Tensor.cpu, torch.Tensor.to

    def cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return _read_back(self) if self.is_meta else real_cpu(self, *args, **kwargs)

    def to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        target = kwargs.get("device", next((a for a in args if isinstance(a, (str, torch.device))), None))
        dtype = kwargs.get("dtype", next((a for a in args if isinstance(a, torch.dtype)), None))
        if self.is_meta and target is not None and torch.device(target).type == "cpu":
            return _read_back(self, dtype)
        moved = real_to(self, *args, **kwargs)
        if moved.is_meta and not self.is_meta:  # remember the values for when they are read back
            moved._stand_in_values = real_to(self, dtype) if dtype is not None else self.detach()
        return moved

    def reader(name: str) -> Any:
        real = getattr(torch.Tensor, name)

        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            return getattr(_read_back(self), name)(*args, **kwargs) if self.is_meta else real(self, *args, **kwargs)

        return read

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "to", to)
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, reader(name))
    try:
        yield DEVICE
    finally:
        monkeypatch.undo()


def assert_on_cpu(result: Any, where: str = "result") -> None:
    """Every tensor in ``result`` (nested tuples, lists, dicts, dataclasses) is on the CPU."""
    if isinstance(result, torch.Tensor):
        assert result.device.type == "cpu", f"{where} is on {result.device}, not on the CPU"
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        for f in dataclasses.fields(result):
            assert_on_cpu(getattr(result, f.name), f"{where}.{f.name}")
    elif isinstance(result, dict):
        for key, value in result.items():
            assert_on_cpu(value, f"{where}[{key!r}]")
    elif isinstance(result, (list, tuple)):
        for i, value in enumerate(result):
            assert_on_cpu(value, f"{where}[{i}]")


# --------------------------------------------------------------------------- the stand-in itself
def test_the_stand_in_fails_like_a_gpu(monkeypatch):
    with second_device(monkeypatch) as device:
        layer = nn.Linear(3, 2).to(device)
        with pytest.raises(RuntimeError, match="device"):
            layer(torch.ones(1, 3))  # an input left on the CPU
        out = layer(torch.ones(1, 3, device=device))
        with pytest.raises(TypeError, match="numpy"):
            np.asarray(out)  # a device tensor handed to numpy
        assert out.cpu().device.type == "cpu" and float(out.sum()) == 0.0 and out.tolist() == [[0.0, 0.0]]
    with pytest.raises(NotImplementedError):
        out.cpu()  # outside the block, meta is itself again


def test_assert_on_cpu_names_the_tensor_on_a_device():
    with pytest.raises(AssertionError, match=r"result\[1\]\['probs'\] is on meta"):
        assert_on_cpu((torch.zeros(1), {"probs": torch.zeros(1, device="meta")}))


# --------------------------------------------------------------------------- class activation maps
class GapNet(nn.Module):
    """conv -> ReLU -> global average pooling -> linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_cam_functions_take_cpu_images_and_give_cpu_results(monkeypatch):
    image = torch.rand(3, 16, 16)  # what the notebooks pass: a CPU test image
    with second_device(monkeypatch) as device:
        net = GapNet().to(device)
        maps = cam.activations(net, net.conv, image[None])
        assert_on_cpu(maps, "activations")
        assert maps.shape == (1, 6, 16, 16)
        result = cam.grad_cam(net, net.conv, image)
        assert_on_cpu(result, "grad_cam")
        small = SmallCNN(3, image_size=32, widths=(4, 4, 4), hidden=8).to(device)  # notebook 04's network
        assert_on_cpu(cam.grad_cam(small, small.features[2], torch.rand(3, 32, 32)), "grad_cam (SmallCNN)")
        picture = (np.random.default_rng(0).random((16, 16, 3)) * 255).astype(np.uint8)
        assert cam.overlay(picture, result[0]).shape == (16, 16, 3)
        cam.plot_activation_maps([picture], [result[0]])


def test_overlay_reads_a_map_left_on_the_device(monkeypatch):
    picture = np.zeros((8, 8, 3), dtype=np.uint8)
    with second_device(monkeypatch) as device:
        assert cam.overlay(picture, torch.ones(4, 4, device=device)).shape == (8, 8, 3)


def test_transfer_net_cam_on_the_device(monkeypatch):
    net = TransferNet("mobilenet_v2", num_classes=3, mode="scratch", weights=None)
    with second_device(monkeypatch) as device:
        net.to(device)
        result = net.cam(torch.rand(3, 64, 64))
        assert_on_cpu(result, "TransferNet.cam")
        assert result[0].shape == (64, 64) and result[2].shape == (3,)


def test_predict_app_on_the_device(monkeypatch):
    """The notebook-05 app calls the CAM functions: a PIL upload in, CPU scores and map out."""
    from PIL import Image

    from course_utils.apps.predict_app import predict_image
    from course_utils.vision.image_data import image_transforms

    picture = Image.fromarray((np.random.default_rng(1).random((40, 40, 3)) * 255).astype(np.uint8))
    with second_device(monkeypatch) as device:
        small = SmallCNN(3, image_size=32, widths=(4, 4, 4), hidden=8).to(device)
        result = predict_image(small, picture, image_transforms(32, train=False), ["a", "b", "c"],
                               cam_layer=small.features[2])  # fmt: skip
        assert_on_cpu(result, "predict_image")
        assert result["cam"].shape == (32, 32) and len(result["top"]) == 3


# --------------------------------------------------------------------------- the captioner's training loop
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = generate(tmp_path_factory.mktemp("synth") / "tiny", n_images=24, image_size=32, seed=3)
    data = load_dataset(folder)
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
    tf = eval_transform(32)
    config = {"decoder": "attention", "vocab_size": len(vocab), "encoder": "small_cnn", "grid": 4,
              "channels": [8, 16, 16], "embed_dim": 16, "hidden_dim": 32, "attention_dim": 16}  # fmt: skip
    return {"vocab": vocab, "config": config,
            "train": train.GroupedCaptions(CaptionDataset(data, "train", vocab, transform=tf), captions_per_image=2),
            "val": CaptionDataset(data, "val", vocab, transform=tf),
            "eval": EvalDataset(data, "val", transform=tf)}  # fmt: skip


@pytest.mark.filterwarnings("ignore:.*copying from a non-meta parameter")  # meta keeps no values
def test_fit_resumes_evaluates_and_saves_on_the_device(tiny, tmp_path, monkeypatch):
    """A CPU run's checkpoint resumed with the model on the stand-in device (batches from CPU
    loaders): one epoch, BLEU by greedy decoding, a checkpoint written; then ``evaluate``."""
    ckpt = tmp_path / "last.pt"
    cfg = train.TrainConfig(epochs=1, batch_size=8, bleu_images=2, samples=1, progress=False, device="cpu",
                            checkpoint=str(ckpt))  # fmt: skip
    train.fit(build_captioner(tiny["config"]), tiny["train"], tiny["val"], tiny["vocab"], cfg,
              model_config=tiny["config"], log=lambda line: None)  # fmt: skip
    lines: list[str] = []
    with second_device(monkeypatch):
        model = build_captioner(tiny["config"])
        on_device = dataclasses.replace(cfg, epochs=2, device="meta")
        history = train.fit(model, tiny["train"], tiny["val"], tiny["vocab"], on_device, eval_set=tiny["eval"],
                            model_config=tiny["config"], resume=ckpt, log=lines.append)  # fmt: skip
        assert all(p.is_meta for p in model.parameters())
        scores, results = train.evaluate(model, tiny["eval"], tiny["vocab"], limit=2)
        assert_on_cpu(results, "evaluate's results")
    assert len(history["val_loss"]) == 2 and all(isinstance(v, float) for v in history["val_loss"])
    assert [line.split(" after")[0] for line in lines if line.startswith("resumed")] == [f"resumed from {ckpt}"]
    assert sum(line.startswith("epoch 2/2") for line in lines) == 1 and load_checkpoint(ckpt)["epoch"] == 2
