"""``python -m course_utils data synth|inspect|fetch``."""

import json

from course_utils.__main__ import main


def test_synth_then_inspect(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["data", "synth", "--out", str(out), "--images", "10", "--lang", "fr", "--size", "32"]) == 0
    assert "images: 10" in capsys.readouterr().out
    assert main(["data", "inspect", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    for line in ("format: flickr8k_kaggle", "name: synth", "images: 10", "captions: 50", "train: 8", "val: 1",
                 "test: 1", "dropped_rows: 0", "missing_images: 0"):  # fmt: skip
        assert line in lines


def test_inspect_shows_offending_rows(tmp_path, capsys):
    (tmp_path / "Flickr8k.token.txt").write_text(
        "1.jpg#0\tA dog .\n2258277193_586949ec62.jpg.1#0\tBogus .\n", encoding="utf-8"
    )
    assert main(["data", "inspect", str(tmp_path / "Flickr8k.token.txt")]) == 0
    out = capsys.readouterr().out
    assert "dropped_rows: 1" in out and "Flickr8k.token.txt:2" in out and "2258277193_586949ec62.jpg.1" in out


def test_inspect_bad_input_exit_2_one_line(tmp_path, capsys):
    broken = tmp_path / "captions_val2014.json"
    broken.write_text("{", encoding="utf-8")
    assert main(["data", "inspect", str(broken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "captions_val2014.json: broken JSON" in err[0]
    assert main(["data", "inspect", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_inspect_size_problem_exit_1(tmp_path, capsys):
    images = [{"filename": f"{i}.jpg", "split": "train", "sentences": [{"raw": "a"}]} for i in range(7500)]
    (tmp_path / "dataset_flickr8k.json").write_text(json.dumps({"dataset": "flickr8k", "images": images}))
    assert main(["data", "inspect", str(tmp_path / "dataset_flickr8k.json")]) == 1
    assert "problem: Karpathy flickr8k split train/val/test 7500/0/0" in capsys.readouterr().out


def test_synth_refuses_foreign_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["data", "synth", "--out", str(tmp_path), "--images", "3"]) == 2
    assert "holds no synthetic dataset" in capsys.readouterr().err
