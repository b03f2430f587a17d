"""The synthetic dataset: deterministic, consistent captions and boxes, real formats on disk."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from course_utils.caption_data import synth
from course_utils.sequence.text import tokenize
from course_utils.vision.shapes import COLOURS

SIZE = 64


@pytest.fixture(scope="module")
def en(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("en") / "synth", n_images=60, seed=3, image_size=SIZE)


@pytest.fixture(scope="module")
def fr(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("fr") / "synth", n_images=60, lang="fr", seed=3, image_size=SIZE)


def _rows(folder):
    lines = (folder / "captions.txt").read_text(encoding="utf-8").splitlines()
    return lines[0], lines[1:]


def test_files_in_the_real_formats(en):
    header, rows = _rows(en)
    assert header == "image,caption"
    assert len(rows) == 60 * 5
    images = sorted(p.name for p in (en / "Images").iterdir())
    assert len(images) == 60 and images[0] == "synth_00000.jpg"
    karpathy = json.loads((en / "dataset_synth.json").read_text(encoding="utf-8"))
    assert {img["split"] for img in karpathy["images"]} == {"train", "val", "test"}
    assert [img["split"] for img in karpathy["images"]].count("val") == 6
    first = karpathy["images"][0]
    assert len(first["sentences"]) == 5
    assert all(s["tokens"] == tokenize(s["raw"]) for s in first["sentences"])
    with Image.open(en / "Images" / images[0]) as img:
        assert img.size == (SIZE, SIZE) and img.mode == "RGB"


def test_deterministic_and_prefix_stable(en, tmp_path):
    again = synth.generate(tmp_path / "again", n_images=60, seed=3, image_size=SIZE)
    assert _rows(again) == _rows(en)
    assert (again / "boxes.json").read_text() == (en / "boxes.json").read_text()
    assert (again / "Images/synth_00007.jpg").read_bytes() == (en / "Images/synth_00007.jpg").read_bytes()
    short = synth.generate(tmp_path / "short", n_images=10, seed=3, image_size=SIZE)
    assert (short / "Images/synth_00009.jpg").read_bytes() == (en / "Images/synth_00009.jpg").read_bytes()
    other = synth.generate(tmp_path / "other", n_images=10, seed=4, image_size=SIZE)
    assert _rows(other)[1] != _rows(short)[1]


def test_skip_regenerate_and_refuse(tmp_path):
    out = synth.generate(tmp_path / "d", n_images=5, image_size=SIZE)
    stamp = (out / "captions.txt").stat().st_mtime_ns
    synth.generate(out, n_images=5, image_size=SIZE)
    assert (out / "captions.txt").stat().st_mtime_ns == stamp  # same arguments: nothing rewritten
    synth.generate(out, n_images=7, image_size=SIZE)  # other arguments: replaced
    assert len(list((out / "Images").iterdir())) == 7
    assert json.loads((out / "synth_meta.json").read_text())["n_images"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder left
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(FileExistsError, match="holds no synthetic dataset"):
        synth.generate(mine, n_images=5)
    with pytest.raises(ValueError, match="lang"):
        synth.generate(tmp_path / "x", lang="de")
    with pytest.raises(ValueError, match="n_images"):
        synth.generate(tmp_path / "x", n_images=0)


def _captions_by_image(folder):
    out = {}
    for img in json.loads((folder / "dataset_synth.json").read_text(encoding="utf-8"))["images"]:
        out[img["filename"]] = [s["tokens"] for s in img["sentences"]]
    return out


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_caption_names_every_object(lang, en, fr):
    folder = en if lang == "en" else fr
    boxes = synth.load_boxes(folder)
    caps = _captions_by_image(folder)
    assert set(boxes) == set(caps)
    counts = set()
    for name, objs in boxes.items():
        counts.add(len(objs))
        assert len({o["shape"] for o in objs}) == len(objs) and len({o["colour"] for o in objs}) == len(objs)
        for tokens in caps[name]:
            assert 3 <= len(tokens) <= 20, tokens
            for o in objs:
                assert set(o["words"]) <= set(tokens), (name, o, tokens)
    assert counts == {1, 2, 3}


def test_boxes_hold_their_object(en):
    """The pixel at the centre of each box has the object's colour, nearer it than any other colour."""
    palette = {k: np.array(v, dtype=float) for k, v in COLOURS.items()}
    for name, objs in synth.load_boxes(en).items():
        img = np.asarray(Image.open(en / "Images" / name).convert("RGB"), dtype=float)
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
            patch = img[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(0)
            nearest = min(palette, key=lambda c: np.linalg.norm(palette[c] - patch))
            assert nearest == o["colour"], (name, o)


def test_relations_match_the_boxes(en):
    """In 'X left of Y' / 'X above Y', X's box centre is left of / above Y's."""
    boxes = synth.load_boxes(en)
    checked = 0
    for name, caps in _captions_by_image(en).items():
        centre = {o["shape"]: ((o["box"][0] + o["box"][2]) / 2, (o["box"][1] + o["box"][3]) / 2) for o in boxes[name]}
        for tokens in caps:
            for i, t in enumerate(tokens):
                relation = t in ("above", "below", "over", "under") or tokens[i + 1 : i + 2] == ["of"]
                if relation:
                    before = [w for w in tokens[:i] if w in centre][-1]
                    after = [w for w in tokens[i:] if w in centre][0]
                    (bx, by), (ax, ay) = centre[before], centre[after]
                    ok = {"left": bx < ax, "right": bx > ax, "above": by < ay, "over": by < ay,
                          "below": by > ay, "under": by > ay}[t]  # fmt: skip
                    assert ok, (name, tokens)
                    checked += 1
    assert checked > 20


def test_french_agreement(fr):
    text = (fr / "captions.txt").read_text(encoding="utf-8")
    assert "une étoile" in text or "une croix" in text
    assert not re.search(r"\bun (petite |grande )?(étoile|croix)", text)
    assert not re.search(r"\bune (petit |grand )?(cercle|carré|triangle|losange)", text)
    assert not re.search(r"(étoile|croix) (vert|bleu|violet)\b", text)
    assert not re.search(r"(cercle|carré|triangle|losange) (verte|bleue|violette)\b", text)
    assert not re.search(r"\bde une?\b", text)  # contracted: d'un, d'une


def test_small_vocabulary(en):
    words = {t for caps in _captions_by_image(en).values() for tokens in caps for t in tokens}
    assert 25 <= len(words) <= 100


def test_sample_captions_match_the_dataset(en):
    caps = synth.sample_captions(10, seed=3)
    assert caps == synth.sample_captions(10, seed=3)
    by_image = _captions_by_image(en)
    for i, c in enumerate(caps):
        assert tokenize(c) in by_image[f"synth_{i:05d}.jpg"]
    assert all(tokenize(c) for c in synth.sample_captions(5, lang="fr"))


def test_load_boxes_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no boxes file"):
        synth.load_boxes(tmp_path)
    bad = tmp_path / "boxes.json"
    bad.write_text('{"a.jpg": [{"box": [1, 2]}]}')
    with pytest.raises(ValueError, match="a.jpg.*object 0"):
        synth.load_boxes(bad)
    bad.write_text("[1, 2")
    with pytest.raises(ValueError, match="boxes.json: broken JSON"):
        synth.load_boxes(bad)
