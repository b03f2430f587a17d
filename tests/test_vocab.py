"""Vocabulary: special ids, frequency threshold, encode/decode, JSON round trip, bad files."""

import json

import pytest
import torch

from course_utils.sequence.vocab import Vocabulary

CAPTIONS = [["a", "red", "circle"], ["a", "blue", "square"], ["a", "red", "star"], ["one", "red", "circle"]]


def test_specials_and_threshold():
    v = Vocabulary.build(CAPTIONS, min_freq=2)
    assert v.itos[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    assert (v.pad_id, v.start_id, v.end_id, v.unk_id) == (0, 1, 2, 3)
    assert v.itos[4:] == ["a", "red", "circle"]  # by frequency (3, 3, 2), ties alphabetical
    assert len(v) == 7 and "blue" not in v
    assert len(Vocabulary.build(CAPTIONS, min_freq=1)) == 4 + 7


def test_encode_decode_round_trip():
    v = Vocabulary.build(CAPTIONS, min_freq=1)
    ids = v.encode(["a", "red", "circle"])
    assert ids[0] == v.start_id and ids[-1] == v.end_id
    assert v.decode(ids) == ["a", "red", "circle"]
    assert v.decode(torch.tensor(ids + [0, 0])) == ["a", "red", "circle"]


def test_unknown_words_and_decode_stops_at_end():
    v = Vocabulary.build(CAPTIONS, min_freq=2)
    assert v.encode(["a", "green", "circle"], add_special=False) == [v.stoi["a"], v.unk_id, v.stoi["circle"]]
    ids = [v.start_id, v.stoi["a"], v.unk_id, v.end_id, v.stoi["red"]]
    assert v.decode(ids) == ["a"]  # <unk> and <start> dropped, nothing after <end>
    with pytest.raises(IndexError, match="outside the vocabulary"):
        v.decode([99])


def test_coverage():
    v = Vocabulary.build(CAPTIONS, min_freq=2)
    assert v.coverage([["a", "red", "dog", "cat"]]) == 0.5


def test_save_load_round_trip(tmp_path):
    v = Vocabulary.build(CAPTIONS, min_freq=2)
    path = v.save(tmp_path / "sub" / "vocab.json")
    w = Vocabulary.load(path)
    assert w.itos == v.itos and w.stoi == v.stoi and w.min_freq == 2 and w.counts["blue"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["vocab.json"]  # no temporary file left
    assert json.loads(path.read_text(encoding="utf-8"))["itos"][0] == "<pad>"


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no vocabulary file"):
        Vocabulary.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: broken JSON"):
        Vocabulary.load(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"itos": ["a", "b", "c", "d"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="wrong.json: a vocabulary starts with"):
        Vocabulary.load(wrong)


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_freq"):
        Vocabulary.build(CAPTIONS, min_freq=0)
    with pytest.raises(TypeError, match="tokenize the captions first"):
        Vocabulary.build(["a red circle"])
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "a", "a"])
