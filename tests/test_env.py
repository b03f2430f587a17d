"""Platform, device and dtype detection, data root, seeding and the `env` command."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from course_utils import env


def test_colab_detected_by_module():
    assert env.detect_platform(environ={}, modules={"google.colab": object()}, kaggle_dir="/nope") == "colab"


@pytest.mark.parametrize("var", ["COLAB_RELEASE_TAG", "COLAB_GPU"])
def test_colab_detected_by_variable(var):
    assert env.detect_platform(environ={var: "1"}, modules={}, kaggle_dir="/nope") == "colab"


def test_kaggle_detected_by_variable_and_folder(tmp_path):
    assert env.detect_platform(environ={"KAGGLE_KERNEL_RUN_TYPE": "Batch"}, modules={}, kaggle_dir="/nope") == "kaggle"
    assert env.detect_platform(environ={}, modules={}, kaggle_dir=str(tmp_path)) == "kaggle"


def test_local_otherwise():
    assert env.detect_platform(environ={}, modules={}, kaggle_dir="/no/such/dir") == "local"


@pytest.mark.parametrize(
    "device_type, capability, expected",
    [
        ("cuda", (7, 5), torch.float16),  # T4
        ("cuda", (6, 0), torch.float16),  # P100
        ("cuda", (8, 0), torch.bfloat16),  # A100
        ("cuda", (9, 0), torch.bfloat16),  # H100
        ("mps", None, torch.float16),
        ("cpu", None, None),
    ],
)
def test_amp_dtype(device_type, capability, expected):
    assert env.amp_dtype_for(device_type, capability) == expected


def test_pick_device_falls_back_to_cpu_here():
    dev = env.pick_device()
    assert dev.type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        assert dev.type != "cuda"
    assert env.pick_device("cpu").type == "cpu"


def test_data_root_per_platform(tmp_path):
    assert str(env.data_root("colab", environ={})).startswith("/content/")
    assert str(env.data_root("kaggle", environ={})).startswith("/kaggle/working/")
    local = env.data_root("local", environ={"XDG_CACHE_HOME": str(tmp_path)})
    assert local == tmp_path / "course_kit"
    assert env.data_root("colab", environ={"COURSE_DATA": str(tmp_path)}) == tmp_path


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("0", False), ("", False)])
def test_fast_switch(value, expected):
    assert env.is_fast({"COURSE_FAST": value}) is expected


def test_pick_uses_fast_mode():
    e = env.get_env()
    e.fast = True
    assert e.pick(full=10, fast=1) == 1
    e.fast = False
    assert e.pick(full=10, fast=1) == 10


def test_seed_everything_repeats():
    env.seed_everything(3)
    a = (torch.rand(4), np.random.rand(4))
    env.seed_everything(3)
    b = (torch.rand(4), np.random.rand(4))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


class _NumpyRandom(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return float(np.random.rand())  # the kind of randomness augmentations use


def test_dataloader_workers_reproducible():
    def draw(seed):
        loader = DataLoader(_NumpyRandom(), batch_size=2, shuffle=True, num_workers=2,
                            generator=env.seed_everything(seed), worker_init_fn=env.seed_worker)
        return torch.cat(list(loader)).tolist()

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_setup_creates_data_root(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "root"))
    e = env.setup(seed=1)
    assert e.data_root.is_dir()
    out = capsys.readouterr().out
    assert "platform: " in out and "fast: 1" in out


def _cli(*args, extra_env=None, drop=()):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("COLAB_", "KAGGLE_")) and k not in drop}
    environ.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "course_utils", *args], capture_output=True, text=True,
                          env=environ, timeout=120)


def _fields(stdout):
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_env_command_simulated_colab():
    res = _cli("env", extra_env={"COLAB_RELEASE_TAG": "release-colab_20261101", "COURSE_DATA": ""})
    assert res.returncode == 0, res.stderr
    fields = _fields(res.stdout)
    assert fields["platform"] == "colab"
    assert fields["data_root"].startswith("/content/")
    for key in ("device", "gpu", "amp_dtype", "fast"):
        assert key in fields
    if not torch.cuda.is_available():
        assert "Change runtime type" in res.stdout


def test_env_command_simulated_kaggle():
    res = _cli("env", extra_env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive", "COURSE_DATA": ""})
    fields = _fields(res.stdout)
    assert fields["platform"] == "kaggle"
    assert fields["data_root"].startswith("/kaggle/working/")


def test_env_command_fast_and_override(tmp_path):
    res = _cli("env", extra_env={"COURSE_FAST": "1", "COURSE_DATA": str(tmp_path)})
    fields = _fields(res.stdout)
    assert fields["fast"] == "1"
    assert fields["data_root"] == str(tmp_path)
    if not torch.cuda.is_available():
        assert fields["device"] in ("cpu", "mps") and fields["gpu"] == "none"


def test_help_lists_every_command():
    from course_utils.__main__ import COMMANDS

    res = _cli("--help")
    assert res.returncode == 0
    for name, _, _ in COMMANDS:
        assert name in res.stdout


def test_unknown_command_is_an_error():
    res = _cli("no-such-command")
    assert res.returncode == 2
    assert "unknown command" in res.stderr
