"""Checkpoints: round trip, atomic writes, RNG states, and refusal of files that could run code."""

import os
import pickle
import random

import numpy as np
import pytest
import torch

from course_utils.captioning.checkpoint import (
    CheckpointError,
    load_checkpoint,
    private_rng,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


class Payload:
    """Unpickling this runs ``os.system``: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    vocab = ["<pad>", "<start>", "<end>", "<unk>", "a"]
    path = save_checkpoint(tmp_path / "run" / "last.pt", model=model.state_dict(), config={"decoder": "attention"},
                           vocab=vocab, epoch=3, history={"val_loss": [1.5]})  # fmt: skip
    data = load_checkpoint(path)
    assert data["epoch"] == 3 and data["vocab"][4] == "a" and data["history"]["val_loss"] == [1.5]
    torch.testing.assert_close(data["model"]["weight"], model.weight)
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "course_utils.captioning.checkpoint/1", "model": {}, "config": Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # the same payload as a raw pickle file
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(CheckpointError, match="refused|not a readable"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_missing_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nothing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_checkpoint(bad)
    good = save_checkpoint(tmp_path / "good.pt", model={}, config={})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a course_utils checkpoint"):
        load_checkpoint(foreign)


def test_failed_save_keeps_the_previous_file(tmp_path):
    path = save_checkpoint(tmp_path / "last.pt", model={"w": torch.ones(2)}, config={}, epoch=1)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint(path, model={}, config={}, epoch=2, broken=Unsaveable())
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_rng_states_survive_a_checkpoint(tmp_path):
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    save_checkpoint(tmp_path / "rng.pt", model={}, config={}, rng=rng_state(gen))
    expected = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    gen2 = torch.Generator().manual_seed(0)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], gen2)
    got = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen2))
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
    torch.testing.assert_close(got[3], expected[3])


@pytest.mark.parametrize("field, value, message", [
    ("config", Exception("pickled object"), "field 'config' is a Exception, not a dict"),
    ("config", {"hidden_dim": Exception("x")}, "field 'config' holds a Exception object"),
    ("config", {"hidden_dim": torch.ones(1)}, "field 'config' holds a Tensor object"),
    ("model", ["not", "a", "dict"], "field 'model' is a list, not a dict"),
    ("model", {"weight": Exception("x")}, "field 'model' holds a Exception object"),
    ("optimizer", {"state": {0: {"step": ValueError("x")}}}, "field 'optimizer' holds a ValueError object"),
    ("vocab", ["<pad>", 3], "field 'vocab' is not a list of strings"),
    ("vocab", "<pad> <start>", "field 'vocab' is not a list of strings"),
    ("epoch", "3", "field 'epoch' is a str, not an int"),
    ("epoch", True, "field 'epoch' is a bool, not an int"),
    ("history", {"val_loss": ["1.5"]}, "field 'history' is not a dict of lists of numbers"),
    ("trainer", {"best_val_loss": KeyError("x")}, "field 'trainer' holds a KeyError object"),
    ("rng", {"torch": RuntimeError("x")}, "field 'rng' holds a RuntimeError object"),
])
def test_every_field_is_checked_whatever_the_loader_accepts(tmp_path, field, value, message):
    """torch 2.14's safe loader rebuilds exceptions: the kit checks each field itself."""
    contents = {"format": "course_utils.captioning.checkpoint/1", "model": {"w": torch.ones(1)}, "config": {"a": 1}}
    contents[field] = value
    path = tmp_path / "crafted.pt"
    try:
        torch.save(contents, path)
    except Exception:  # pragma: no cover - an object this torch cannot even save
        pytest.skip("this torch cannot save the crafted object")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "crafted.pt" in text and "weights_only" not in text
    assert message in text or "refused" in text, text


@pytest.mark.parametrize("content, kind", [
    (b"epoch 3, loss 1.5\n", "a text file"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "a PNG image"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "a Git LFS pointer"),
    (b"", "an empty file"),
])
def test_foreign_files_are_named_truthfully(tmp_path, content, kind):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    text = str(info.value)
    assert "not a PyTorch checkpoint" in text and kind in text and "pickled" not in text, text


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="it is a folder"):
        load_checkpoint(tmp_path)


class FakeCuda:
    """``torch.cuda``'s RNG functions on a machine with ``count`` GPUs (none exist here): each GPU's
    generator state is a small tensor; naming a GPU the machine lacks raises IndexError, as torch does."""

    def __init__(self, count: int):
        self.states = [torch.full((4,), 10 + i, dtype=torch.uint8) for i in range(count)]

    def index(self, device="cuda") -> int:
        index = torch.device(device).index or 0
        if index >= len(self.states):
            raise IndexError(f"list index out of range (GPU {index} of {len(self.states)})")
        return index

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: bool(self.states))
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.states))
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": self.states[self.index(device)].clone())
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in self.states])

        def set_state(state, device="cuda"):
            self.states[self.index(device)] = state.clone()

        def set_all(states):
            for i, state in enumerate(states):
                set_state(state, i)

        monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)


def two_gpu_rng(tmp_path, monkeypatch, legacy: bool):
    """A checkpoint written on a two-GPU machine (Kaggle's T4 x2): the kit's format, or the
    earlier one that kept one CUDA state per visible GPU."""
    FakeCuda(2).install(monkeypatch)
    state = rng_state(device=torch.device("cuda", 1))
    if legacy:
        del state["device"]
        state["cuda"] = torch.cuda.get_rng_state_all()
    save_checkpoint(tmp_path / "two_gpus.pt", model={}, config={}, rng=state)
    return load_checkpoint(tmp_path / "two_gpus.pt")["rng"]


@pytest.mark.parametrize("legacy", [False, True])
def test_resume_on_one_gpu_from_two(tmp_path, monkeypatch, legacy):
    saved = two_gpu_rng(tmp_path, monkeypatch, legacy)
    if not legacy:  # only the training device's state is saved
        assert saved["device"]["type"] == "cuda" and saved["device"]["state"].tolist() == [11] * 4
    one = FakeCuda(1)
    one.install(monkeypatch)
    lines = []
    set_rng_state(saved, device=torch.device("cuda"), log=lines.append)  # torch raised IndexError here
    assert lines == []
    assert one.states[0].tolist() == ([11] * 4 if not legacy else [10] * 4)


@pytest.mark.parametrize("legacy", [False, True])
def test_resume_without_gpu_from_two_says_so_in_one_line(tmp_path, monkeypatch, legacy):
    saved = two_gpu_rng(tmp_path, monkeypatch, legacy)
    FakeCuda(0).install(monkeypatch)
    torch.manual_seed(5)
    lines = []
    set_rng_state(saved, device=torch.device("cpu"), log=lines.append)
    assert len(lines) == 1 and "from cuda, this run is on cpu" in lines[0]
    torch.testing.assert_close(torch.get_rng_state(), saved["torch"])  # the CPU's state is restored all the same


def test_resume_on_a_gpu_from_a_cpu_run_says_so(tmp_path, monkeypatch):
    FakeCuda(0).install(monkeypatch)
    saved = rng_state(device=torch.device("cpu"))
    gpu = FakeCuda(1)
    gpu.install(monkeypatch)
    lines = []
    set_rng_state(saved, device=torch.device("cuda", 0), log=lines.append)
    assert len(lines) == 1 and "from cpu, this run is on cuda" in lines[0]
    assert gpu.states[0].tolist() == [10] * 4  # left as it was


def test_private_rng_leaves_the_callers_stream_alone():
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    expected = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    with private_rng():
        torch.manual_seed(100), torch.rand(5), np.random.rand(5), random.random()
    got = (torch.rand(2), np.random.rand(2), random.random())
    torch.testing.assert_close(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]
