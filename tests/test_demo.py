"""The main job at a tiny size: it runs end to end, prints its table and saves its files;
``caption`` then captions images with the checkpoint it wrote."""

import json
import re

import pytest
import torch
from PIL import Image

from course_utils.__main__ import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    out = root / "out"
    mp = pytest.MonkeyPatch()
    mp.setenv("COURSE_DATA", str(root / "data"))
    try:
        import contextlib
        import io

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["demo", "--out", str(out), "--images", "80", "--epochs", "2", "--figures", "2",
                         "--meteor", "no", "--quiet", "--threads", "1"])  # fmt: skip
    finally:
        mp.undo()
    return code, buf.getvalue(), out, root


def test_demo_prints_its_table(demo_run):
    code, text, out, _ = demo_run
    assert code == 0
    assert "decoding: greedy, beam size 1" in text and "decoding: beam search, beam size 3" in text
    values = dict(re.findall(r"^([a-z_0-9]+): ([0-9.]+|nan)$", text, flags=re.M))
    for key in ("bleu1", "bleu4", "rouge_l", "cider", "attention_localisation", "attention_localisation_chance",
                "seconds"):  # fmt: skip
        assert key in values, f"{key} missing from:\n{text}"
    assert 0 <= float(values["bleu4"]) <= 100
    loc = float(values["attention_localisation"])  # nan if the tiny model names no object yet
    assert loc != loc or 0 <= loc <= 1
    assert "meteor" not in values
    assert "network: efficientnet_lite0, weights: ImageNet" in text  # the frozen pretrained encoder, named
    assert re.search(r"^features: 7 x 7 x 112 per image", text, flags=re.M)


def test_demo_saves_checkpoint_figures_and_scores(demo_run):
    _, _, out, root = demo_run
    for name in ("captioner.pt", "captioner.best.pt", "vocab.json", "curves.png", "scores.json"):
        assert (out / name).is_file(), name
    assert len(list(out.glob("attention_*.png"))) == 2
    scores = json.loads((out / "scores.json").read_text())
    assert scores["beam1"]["method"] == "greedy" and scores["beam3"]["method"] == "beam search"
    assert scores["epochs_trained"] == 2 and scores["test_images"] == 8
    assert (root / "data" / "synth_en_80_s0" / "captions.txt").is_file()
    config = torch.load(out / "captioner.pt", map_location="cpu", weights_only=True)["config"]
    assert config["encoder"] is None and "concepts" not in config  # a decoder on cached features
    assert config["feature_encoder"] == "efficientnet_lite0:blocks.4" and config["image_size"] == 112
    assert config["trained_on"].startswith("synthetic shapes")


def test_caption_command_with_the_demo_checkpoint(demo_run, tmp_path, capsys):
    _, _, out, root = demo_run
    images = sorted((root / "data" / "synth_en_80_s0" / "Images").glob("*.jpg"))[:2]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    missing = tmp_path / "missing.png"
    png = tmp_path / "photo.png"
    Image.new("RGBA", (50, 40), (200, 30, 30, 128)).save(png)
    Image.new("RGB", (50, 40), (30, 200, 30)).save(tmp_path / "photo.jpg")  # same name, another image
    (tmp_path / "other").mkdir()
    Image.new("RGB", (50, 40), (30, 30, 200)).save(tmp_path / "other" / "photo.png")
    same = [str(png), str(tmp_path / "photo.jpg"), str(tmp_path / "other" / "photo.png")]
    args = [str(images[0]), str(missing), str(corrupt), str(images[1]), str(tmp_path / "other"), *same]
    code = main(["caption", *args, "--checkpoint", str(out / "captioner.pt"), "--beam", "2",
                 "--out", str(tmp_path / "figs")])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1  # some images failed, the others were captioned
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("network: efficientnet_lite0")  # the frozen encoder put back, named
    assert lines[1] == "model: trained on synthetic shapes: photos get shape words; train on Flickr8k for photos"
    lines = lines[2:]
    assert [line.split(": ")[0] for line in lines] == [str(images[0]), str(images[1]), *same]
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3 and "missing.png" in errors[0] and "corrupt.jpg" in errors[1]
    assert errors[2] == f"error: {tmp_path / 'other'}: a folder, not an image file (give the images, e.g. " \
                        f"{tmp_path / 'other'}/*.jpg)"
    figures = [line.rsplit("[", 1)[1].rstrip("]") for line in lines]
    assert [f.rsplit("/", 1)[1] for f in figures[2:]] == ["photo_attention.png", "photo_attention_2.png",
                                                          "photo_attention_3.png"]  # fmt: skip
    assert sorted(str(p) for p in (tmp_path / "figs").iterdir()) == sorted(figures)  # none overwritten


def test_caption_command_refuses_bad_checkpoints(demo_run, tmp_path, capsys):
    import torch

    from course_utils.captioning.checkpoint import load_checkpoint, save_checkpoint

    _, _, out, root = demo_run
    image = str(sorted((root / "data" / "synth_en_80_s0" / "Images").glob("*.jpg"))[0])
    ckpt = load_checkpoint(out / "captioner.pt")
    ckpt["config"]["hidden_dim"] = 64  # the weights no longer fit the model
    save_checkpoint(tmp_path / "incompatible.pt", **{k: v for k, v in ckpt.items() if k != "format"})
    torch.save({"format": "course_utils.captioning.checkpoint/1", "model": {}, "config": Exception("pickled object")},
               tmp_path / "evil.pt")  # fmt: skip
    for name, message in (("incompatible.pt", "incompatible checkpoint"), ("evil.pt", "refused"),
                          ("nothing.pt", "no such checkpoint")):  # fmt: skip
        code = main(["caption", image, "--checkpoint", str(tmp_path / name)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err


DEMO_UNDER_TORCHRUN = """
import json, os, sys, time
sys.path.insert(0, {root!r})
import course_utils.caption_data.cache as cache
import course_utils.caption_data.synth as synth
from course_utils.__main__ import main

rank = int(os.environ["RANK"])
log = open({log!r} + f".{{rank}}", "w")
real_write_dataset, real_write = synth._write_dataset, cache._DiskArray._write

def write_dataset(*args, **kwargs):
    log.write(json.dumps(["dataset", time.time()]) + "\\n")
    real_write_dataset(*args, **kwargs)
    log.write(json.dumps(["dataset done", time.time()]) + "\\n")

def write_cache(self, *args, **kwargs):
    log.write(json.dumps(["cache " + self.dir.name, time.time()]) + "\\n")
    real_write(self, *args, **kwargs)
    log.write(json.dumps(["cache done", time.time()]) + "\\n")

synth._write_dataset, cache._DiskArray._write = write_dataset, write_cache
code = main(["demo", "--out", {out!r}, "--images", "20", "--epochs", "1", "--figures", "1", "--meteor", "no",
             "--quiet", "--threads", "1", "--device", "cpu"])
log.write(json.dumps(["exit", code]) + "\\n")
"""


@pytest.mark.slow
def test_demo_under_torchrun_prepares_its_data_on_rank_0_only(tmp_path):
    """Two processes (gloo): rank 0 generates the dataset and builds the feature caches while
    rank 1 waits (it then reuses them); rank 0 alone writes the run's files."""
    import os
    import sys
    import textwrap
    from pathlib import Path

    from processes import run_process_group

    root = Path(__file__).resolve().parents[1]
    script, out, log = tmp_path / "demo_ddp.py", tmp_path / "out", tmp_path / "log"
    script.write_text(textwrap.dedent(DEMO_UNDER_TORCHRUN).format(root=str(root), out=str(out), log=str(log)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_DATA": str(tmp_path / "data")}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = run_process_group(command, timeout=400, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = {rank: [json.loads(line) for line in Path(f"{log}.{rank}").read_text().splitlines()] for rank in (0, 1)}
    assert events[1] == [["exit", 0]], "rank 1 wrote data it should have waited for"
    names = [name for name, _ in events[0]]
    caches = [n for n in names if n.startswith("cache ") and n != "cache done"]  # train, val, test
    assert names[0] == "dataset" and len(caches) == 3 and names[-1] == "exit"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["captioner.pt", "captioner.best.pt", "vocab.json", "curves.png", "scores.json",
         *[p.name for p in out.glob("attention_*.png")]])  # fmt: skip
    assert proc.stdout.count("bleu4:") == 2  # rank 0 alone evaluates: greedy and beam search
    assert not list((tmp_path / "data" / "cache").rglob("*.tmp"))
