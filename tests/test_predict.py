"""``python -m course_utils predict``: ImageNet classes of the scikit-image photos, offline, and bad files."""

import socket

import pytest
import torch
from PIL import Image
from skimage import data as skdata

from course_utils.__main__ import main
from course_utils.vision import pretrained

CATS = {"tiger cat", "tabby", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    def no_network(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(pretrained, "reachable", lambda *a, **k: False)


def test_predict_names_the_cat_and_the_espresso(offline, tmp_path, capsys):
    files = []
    for name in ("chelsea", "coffee"):
        path = tmp_path / f"{name}.png"
        Image.fromarray(getattr(skdata, name)()).save(path)
        files.append(str(path))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    code = main(["predict", files[0], str(bad), files[1], "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1  # one image could not be read; the others are done
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error:") and "broken.jpg" in errors[0]
    assert "Traceback" not in captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("network: efficientnet_lite0")  # which network and weights, in one line
    blocks = {}
    for line in lines[1:]:
        if line.startswith("image: "):
            current = blocks.setdefault(line[len("image: "):], [])
        elif not line.startswith("saved: "):
            label, p = line.rsplit(": ", 1)
            current.append((label, float(p)))
    assert [len(v) for v in blocks.values()] == [5, 5]
    assert blocks[files[0]][0][0] in CATS
    assert blocks[files[1]][0][0] == "espresso" and blocks[files[1]][0][1] > 0.5
    for name in ("chelsea", "coffee"):
        assert (out / f"{name}_cam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_network_is_one_error_line(offline, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "x.png"), "--network", "vgg11"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --network vgg11")
