"""Every loader on small files written in the exact real formats, quirks included."""

import json

import pytest
from PIL import Image

from course_utils.caption_data.formats import detect_format, load_dataset
from course_utils.caption_data.records import DatasetFormatError, hash_split

NAMES = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg"]
BOGUS = "2258277193_586949ec62.jpg.1"


def _images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        Image.new("RGB", (8, 8), (90, 30, 10)).save(folder / n)


# --------------------------------------------------------------------------- Flickr8k original
def _flickr8k_original(root, names=NAMES, with_images=True, missing=()):
    text = root / "Flickr8k_text"
    text.mkdir(parents=True)
    lines = [f"{n}#{k}\tA dog runs number {k} in picture {i} ." for i, n in enumerate(names) for k in range(5)]
    lines.insert(3, f"{BOGUS}#0\tA bogus caption .")
    lines += [f"{BOGUS}#{k}\tBogus {k} ." for k in range(1, 5)]
    lines.append("this line has no tab")
    (text / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (text / "Flickr_8k.trainImages.txt").write_text(f"{names[0]}\n{names[1]}\n")
    (text / "Flickr_8k.devImages.txt").write_text(f"{names[2]}\n")
    (text / "Flickr_8k.testImages.txt").write_text("")
    if with_images:
        _images(root / "Flicker8k_Dataset", [n for n in names if n not in missing])
    return text


def test_flickr8k_original(tmp_path):
    _flickr8k_original(tmp_path)
    data = load_dataset(tmp_path)
    assert data.format == "flickr8k_original" and data.name == "flickr8k"
    assert data.images() == sorted(NAMES)
    assert data.captions[NAMES[1]][2] == "A dog runs number 2 in picture 1 ."
    assert data.images("train") == sorted(NAMES[:2]) and data.images("val") == [NAMES[2]]
    assert data.image_dir == (tmp_path / "Flicker8k_Dataset").resolve()
    dropped = data.report.dropped
    assert len(dropped) == 6
    assert sum(BOGUS in i.row for i in dropped) == 5
    assert dropped[0].where == "Flickr8k.token.txt:4" and "not an image file name" in dropped[0].reason
    assert "no tab" in dropped[-1].row
    assert any("subset of flickr8k: 3 of 8091" in n for n in data.report.notes)


def test_flickr8k_missing_image_detected(tmp_path):
    _flickr8k_original(tmp_path, missing=(NAMES[1],))
    data = load_dataset(tmp_path / "Flickr8k_text" / "Flickr8k.token.txt")
    assert data.report.missing_images == [NAMES[1]]
    assert NAMES[1] not in data.captions and NAMES[1] not in data.split
    assert data.num_captions() == 10
    assert "missing_images: 1" in data.summary()


def test_flickr8k_full_size_verified(tmp_path):
    """8,092 ids in the token file, the bogus one dropped: 8,091 images and 40,455 captions."""
    names = [f"{i:010d}_abcdef0123.jpg" for i in range(8091)]
    _flickr8k_original(tmp_path, names=names, with_images=False)
    data = load_dataset(tmp_path)
    assert (len(data.captions), data.num_captions()) == (8091, 40455)
    assert data.report.checks == ["flickr8k: 8091 images, 40455 captions as published"]
    assert data.report.problems == []
    assert any("image files not checked" in n for n in data.report.notes)


def test_flickr8k_incomplete_full_size_is_a_problem(tmp_path):
    names = [f"{i:010d}_abcdef0123.jpg" for i in range(8000)]
    _flickr8k_original(tmp_path, names=names, with_images=False)
    data = load_dataset(tmp_path)
    assert data.report.problems == ["flickr8k: 8000 images, 40000 captions; published 8091 images, 40455 captions"]


# --------------------------------------------------------------------------- Flickr8k Kaggle
KAGGLE = (
    "image,caption\n"
    f"{NAMES[0]},A child in a pink dress is climbing up a set of stairs in an entry way .\n"
    f"{NAMES[0]},A girl, a dog and a cat are playing , outside .\n"
    f'{NAMES[1]},"A black dog and a spotted dog are fighting, loudly"\n'
    f'{NAMES[1]},"She said ""hello"", then left ."\n'
    f"{NAMES[2]},\n"
    "not-an-image,caption\n"
)


def test_flickr8k_kaggle_commas_inside_captions(tmp_path):
    (tmp_path / "captions.txt").write_text(KAGGLE, encoding="utf-8")
    _images(tmp_path / "Images", NAMES)
    data = load_dataset(tmp_path)
    assert data.format == "flickr8k_kaggle" and data.name == "flickr8k"
    assert data.captions[NAMES[0]][1] == "A girl, a dog and a cat are playing , outside ."
    quoted = ["A black dog and a spotted dog are fighting, loudly", 'She said "hello", then left .']
    assert data.captions[NAMES[1]] == quoted
    assert [i.where for i in data.report.dropped] == ["captions.txt:6", "captions.txt:7"]
    assert data.image_dir == (tmp_path / "Images").resolve()
    assert any("hash" in n for n in data.report.notes)
    assert set(data.split.values()) <= {"train", "val", "test"}


def test_kaggle_with_karpathy_split_beside_it(tmp_path):
    (tmp_path / "captions.txt").write_text(KAGGLE, encoding="utf-8")
    _images(tmp_path / "Images", NAMES)
    _karpathy(tmp_path / "dataset_flickr8k.json", "flickr8k")
    data = load_dataset(tmp_path)
    assert data.format == "flickr8k_kaggle"
    assert data.split == {NAMES[0]: "train", NAMES[1]: "val"}
    assert any("split from dataset_flickr8k.json" in n for n in data.report.notes)


def test_kaggle_bad_header(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("img,text\na.jpg,a dog\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="captions.txt: expected the header 'image,caption' on line 1, "
                                                 "got 'img,text'"):  # fmt: skip
        load_dataset(path)


# --------------------------------------------------------------------------- Flickr30k Kaggle
RESULTS = (
    "image_name| comment_number| comment\n"
    "1000092795.jpg| 0| Two young guys with shaggy hair look at their hands while hanging out in the yard .\n"
    "1000092795.jpg| 1| Two young , White males are outside near many bushes .\n"
    "2199200615.jpg| 3| A dog jumps .\n"
    "2199200615.jpg| 4 A dog runs across the grass .\n"
    "2199200615.jpg|\n"
    "10002456.jpg| 0| Several men in hard hats | yes, a pipe .\n"
)


def test_flickr30k_kaggle(tmp_path):
    top = tmp_path / "flickr30k_images"
    top.mkdir()
    (top / "results.csv").write_text(RESULTS, encoding="utf-8")
    _images(top / "flickr30k_images", ["1000092795.jpg", "2199200615.jpg", "10002456.jpg"])
    data = load_dataset(tmp_path)
    assert data.format == "flickr30k_kaggle" and data.name == "flickr30k"
    assert data.image_dir == (top / "flickr30k_images").resolve()
    assert data.captions["2199200615.jpg"] == ["A dog jumps .", "A dog runs across the grass ."]
    assert data.captions["1000092795.jpg"][1] == "Two young , White males are outside near many bushes ."
    assert data.captions["10002456.jpg"] == ["Several men in hard hats | yes, a pipe ."]
    assert [i.where for i in data.report.repaired] == ["results.csv:5"]
    assert [i.where for i in data.report.dropped] == ["results.csv:6"]
    assert "repaired_rows: 1" in data.summary()


# --------------------------------------------------------------------------- COCO
def _coco(path, subset="val2014"):
    ids = [42, 73]
    data = {
        "info": {"description": "COCO 2014 Dataset"},
        "licenses": [],
        "images": [{"id": i, "file_name": f"COCO_{subset}_{i:012d}.jpg", "width": 8, "height": 8} for i in ids],
        "annotations": [
            {"id": 1, "image_id": 42, "caption": "A man riding a wave on top of a surfboard."},
            {"id": 2, "image_id": 42, "caption": "A surfer, in the ocean.\n"},
            {"id": 3, "image_id": 73, "caption": "A kitchen with a stove."},
            {"id": 4, "image_id": 999, "caption": "No such image."},
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return [img["file_name"] for img in data["images"]]


def test_coco_captions_via_pycocotools(tmp_path):
    files = _coco(tmp_path / "annotations" / "captions_val2014.json")
    _images(tmp_path / "val2014", files)
    data = load_dataset(tmp_path)
    key = "val2014/COCO_val2014_000000000042.jpg"
    assert data.format == "coco" and data.name == "coco"
    assert data.captions[key] == ["A man riding a wave on top of a surfboard.", "A surfer, in the ocean."]
    assert data.split[key] == "val" and data.image_path(key).is_file()
    assert [i.reason for i in data.report.dropped] == ["image_id not in 'images'"]


def test_coco_train_and_val_together(tmp_path):
    _coco(tmp_path / "annotations" / "captions_train2017.json", "train2017")
    _coco(tmp_path / "annotations" / "captions_val2017.json", "val2017")
    data = load_dataset(tmp_path / "annotations")
    assert len(data.images("train")) == 2 and len(data.images("val")) == 2


def test_coco_instances_file_refused(tmp_path):
    path = tmp_path / "instances_val2014.json"
    path.write_text(json.dumps({"images": [], "annotations": [{"id": 1, "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(DatasetFormatError, match="instances_val2014.json: COCO annotations without 'caption'"):
        load_dataset(path)


# --------------------------------------------------------------------------- Karpathy
def _karpathy(path, dataset, filepath=None):
    splits = ["train", "val", "restval", "test"]
    images = []
    for i, s in enumerate(splits):
        name = NAMES[i] if i < len(NAMES) else f"extra_{i}.jpg"
        sentences = [{"raw": f"A dog number {k} .", "tokens": ["a", "dog", "number", str(k)]} for k in range(5)]
        img = {"filename": name, "imgid": i, "split": s, "sentences": sentences}
        if filepath:
            img["filepath"] = filepath
        images.append(img)
    path.write_text(json.dumps({"dataset": dataset, "images": images}), encoding="utf-8")


def test_karpathy_restval_is_train(tmp_path):
    path = tmp_path / "dataset_flickr8k.json"
    _karpathy(path, "flickr8k")
    data = load_dataset(path)
    assert data.format == "karpathy" and data.name == "flickr8k"
    assert data.images("train") == sorted([NAMES[0], NAMES[2]]) and data.images("test") == ["extra_3.jpg"]
    assert any("1 'restval' images counted as train" in n for n in data.report.notes)
    assert data.num_captions() == 20


def test_karpathy_coco_filepath(tmp_path):
    _karpathy(tmp_path / "dataset_coco.json", "coco", filepath="val2014")
    _images(tmp_path / "val2014", NAMES + ["extra_3.jpg"])
    data = load_dataset(tmp_path / "dataset_coco.json")
    assert f"val2014/{NAMES[0]}" in data.captions and data.image_path(f"val2014/{NAMES[0]}").is_file()


def test_karpathy_full_split_sizes(tmp_path):
    images = [{"filename": f"{i}.jpg", "split": s, "sentences": [{"raw": "a dog"}]}
              for i, s in enumerate(["train"] * 6000 + ["val"] * 1000 + ["test"] * 999)]  # fmt: skip
    path = tmp_path / "dataset_flickr8k.json"
    path.write_text(json.dumps({"dataset": "flickr8k", "images": images}))
    data = load_dataset(path)
    assert data.report.problems == ["Karpathy flickr8k split train/val/test 6000/1000/999, published 6000/1000/1000"]


# --------------------------------------------------------------------------- bad input, detection
def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DatasetFormatError, match="no caption file found"):
        load_dataset(tmp_path)
    broken = tmp_path / "dataset_flickr30k.json"
    broken.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="dataset_flickr30k.json: broken JSON"):
        load_dataset(broken)
    odd = tmp_path / "notes.txt"
    odd.write_text("hello\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match="notes.txt: unknown caption format"):
        load_dataset(odd)
    empty = tmp_path / "e" / "captions.txt"
    empty.parent.mkdir()
    empty.write_text("image,caption\nx,\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=r"no caption rows could be read \(1 rows dropped\)"):
        load_dataset(empty)


def test_image_folder_without_the_named_images(tmp_path):
    (tmp_path / "captions.txt").write_text(KAGGLE, encoding="utf-8")
    _images(tmp_path / "Images", ["other.jpg"])
    with pytest.raises(DatasetFormatError, match="none of the 2 images it names"):
        load_dataset(tmp_path)


def test_detect_format_by_content(tmp_path):
    a = tmp_path / "my_captions.csv"
    a.write_text(RESULTS, encoding="utf-8")
    assert detect_format(a) == "flickr30k_kaggle"
    b = tmp_path / "tokens.txt"
    b.write_text(f"{NAMES[0]}#0\tA dog .\n", encoding="utf-8")
    assert detect_format(b) == "flickr8k_original"


def test_hash_split_is_stable():
    names = [f"{i}.jpg" for i in range(2000)]
    first = [hash_split(n) for n in names]
    assert first == [hash_split(n) for n in names]
    assert 0.75 < first.count("train") / 2000 < 0.85
    assert hash_split("sub/5.jpg") == hash_split("5.jpg")


def test_synthetic_dataset_reads_as_kaggle_and_karpathy(tmp_path):
    from course_utils.caption_data.synth import generate

    out = generate(tmp_path / "s", n_images=20, image_size=32)
    data = load_dataset(out)
    assert data.name == "synth" and data.format == "flickr8k_kaggle"
    assert len(data.captions) == 20 and data.num_captions() == 100
    assert len(data.images("train")) == 16
    k = load_dataset(out / "dataset_synth.json")
    assert k.captions == data.captions and k.split == data.split


# --------------------------------------------------------------------------- real copies from the wild
def test_flickr8k_space_instead_of_tab_is_repaired(tmp_path):
    """A few rows with a space for the TAB: repaired and counted, so captions per image stay right."""
    text = _flickr8k_original(tmp_path)
    token = text / "Flickr8k.token.txt"
    lines = token.read_text(encoding="utf-8").splitlines()
    bad = [i for i, line in enumerate(lines) if line.startswith((f"{NAMES[2]}#1\t", f"{NAMES[2]}#3\t"))]
    for i in bad:
        lines[i] = lines[i].replace("\t", " ", 1)
    token.write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = load_dataset(tmp_path)
    assert [i.where for i in data.report.repaired] == [f"Flickr8k.token.txt:{i + 1}" for i in bad]
    assert all("a space instead of the TAB" in i.reason for i in data.report.repaired)
    assert data.captions[NAMES[2]][1] == "A dog runs number 1 in picture 2 ."
    assert data.num_captions() == 15 and "captions_per_image: 5.00 (min 5, max 5)" in data.summary()
    assert "repaired_rows: 2" in data.summary() and len(data.report.dropped) == 6  # the bogus rows still dropped


def test_karpathy_json_beside_the_token_file_gives_the_split(tmp_path):
    text = _flickr8k_original(tmp_path)
    for name in ("train", "dev", "test"):
        (text / f"Flickr_8k.{name}Images.txt").unlink()
    _karpathy(text / "dataset_flickr8k.json", "flickr8k")  # NAMES[0] train, [1] val, [2] restval
    data = load_dataset(tmp_path)
    assert data.split == {NAMES[0]: "train", NAMES[1]: "val", NAMES[2]: "train"}
    assert any("split from dataset_flickr8k.json" in n for n in data.report.notes)
    assert not any("hash" in n for n in data.report.notes)
    assert load_dataset(text / "Flickr8k.token.txt").split == data.split  # given the file, the same


def test_folder_holding_only_the_lemma_token_file(tmp_path):
    text = _flickr8k_original(tmp_path)
    (text / "Flickr8k.token.txt").rename(text / "Flickr8k.lemma.token.txt")
    data = load_dataset(tmp_path)
    assert data.format == "flickr8k_original" and data.source.name == "Flickr8k.lemma.token.txt"
    assert data.images() == sorted(NAMES)


def test_image_folder_holding_only_some_images(tmp_path, capsys):
    """The first 25 names sorted are absent, the rest present: counted, the missing reported, it goes on."""
    from course_utils.__main__ import main

    names = [f"{i:04d}.jpg" for i in range(40)]
    (tmp_path / "captions.txt").write_text("image,caption\n" + "".join(f"{n},A dog {k} .\n" for n in names
                                                                         for k in range(5)))  # fmt: skip
    _images(tmp_path / "Images", names[30:])
    data = load_dataset(tmp_path)
    assert data.images() == names[30:] and data.num_captions() == 50
    assert data.report.missing_images == names[:30]
    assert any("10 of the 40 images named are in" in n and "30 missing (e.g. 0000.jpg" in n for n in data.report.notes)
    assert main(["data", "inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "images: 10" in out and "missing_images: 30" in out and "  missing image 0000.jpg" in out
    assert "captions_per_image: 5.00 (min 5, max 5)" in out


def test_missing_split_file_is_reported_not_empty(tmp_path, capsys):
    from course_utils.__main__ import main

    text = _flickr8k_original(tmp_path)
    (text / "Flickr_8k.devImages.txt").unlink()
    (text / "Flickr_8k.testImages.txt").unlink()
    data = load_dataset(tmp_path)
    assert data.report.missing_splits == {"val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
    lines = data.summary()
    assert "train: 2" in lines and "val: missing (no Flickr_8k.devImages.txt)" in lines
    assert "test: missing (no Flickr_8k.testImages.txt)" in lines and "unsplit: 1" in lines
    assert "val: 0" not in lines and not any("hash" in n for n in data.report.notes)
    assert main(["data", "inspect", str(tmp_path)]) == 1  # a problem, named
    assert "problem: split file Flickr_8k.devImages.txt is missing: no val split" in capsys.readouterr().out


LFS = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146c1d4a5a8e0b3\nsize 3395237\n"


@pytest.mark.parametrize("name", ["Flickr8k.token.txt", "captions.txt", "results.csv", "dataset_flickr8k.json",
                                  "captions_val2014.json"])  # fmt: skip
def test_git_lfs_pointer_is_named(tmp_path, name):
    (tmp_path / name).write_text(LFS, encoding="utf-8")
    for path in (tmp_path / name, tmp_path):
        with pytest.raises(DatasetFormatError, match=f"{name}: this is a Git LFS pointer, not the data: fetch the "
                                                     "real file"):  # fmt: skip
            load_dataset(path)


@pytest.mark.parametrize("text, message", [
    (f"{NAMES[0]},A dog .\n{NAMES[1]},A cat .\n", "header line 'image,caption' is missing (line 1 is a caption row"),
    (f"\n{NAMES[0]},A dog .\n", "line 1 is blank where the header 'image,caption' should be"),
    ("  \n\n", "an empty file; expected the header 'image,caption'"),
], ids=["missing", "blank", "only blank lines"])  # fmt: skip
def test_captions_txt_header_problems_are_named(tmp_path, text, message):
    (tmp_path / "captions.txt").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetFormatError) as err:
        load_dataset(tmp_path)
    assert message in str(err.value) and "unknown caption format" not in str(err.value)


def test_blank_lines_before_the_header_are_skipped(tmp_path):
    (tmp_path / "captions.txt").write_text("\n" + KAGGLE, encoding="utf-8")
    data = load_dataset(tmp_path)
    assert data.captions[NAMES[1]][0] == "A black dog and a spotted dog are fighting, loudly"
    assert any("1 blank line(s) before the header skipped" in n for n in data.report.notes)
