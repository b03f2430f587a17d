"""Word2Vec on captions, the embedding matrix aligned with the vocabulary, pretrained files."""

import numpy as np
import pytest
import torch

from course_utils.caption_data.synth import sample_captions
from course_utils.caption_data.word2vec import embedding_matrix, load_keyed_vectors, nearest, train_word2vec
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary


@pytest.fixture(scope="module")
def tokens():
    return [tokenize(c) for c in sample_captions(300, seed=1)]


@pytest.fixture(scope="module")
def vectors(tokens):
    return train_word2vec(tokens, dim=16, seed=0, epochs=5)


def test_reproducible_for_a_seed(tokens, vectors):
    again = train_word2vec(tokens, dim=16, seed=0, epochs=5)
    assert np.array_equal(again["circle"], vectors["circle"])
    assert vectors.vector_size == 16


def test_embedding_matrix_aligned_with_vocab(tokens, vectors):
    vocab = Vocabulary.build(tokens, min_freq=2)
    matrix, coverage = embedding_matrix(vectors, vocab)
    assert matrix.shape == (len(vocab), 16) and matrix.dtype == torch.float32
    assert coverage == 1.0
    assert torch.equal(matrix[vocab.pad_id], torch.zeros(16))
    assert np.allclose(matrix[vocab.stoi["red"]].numpy(), vectors["red"])
    bigger = Vocabulary(vocab.itos + ["zebra", "giraffe"])
    m2, cov2 = embedding_matrix(vectors, bigger)
    assert cov2 == pytest.approx((len(vocab) - 4) / (len(vocab) - 2))
    assert m2[-1].abs().sum() > 0  # missing words get random vectors, not zeros


def test_nearest(vectors):
    assert len(nearest(vectors, "red", k=3)) == 3
    assert nearest(vectors, "zebra") == []


def test_load_keyed_vectors_formats(tmp_path, vectors):
    vectors.save_word2vec_format(str(tmp_path / "v.txt"))
    vectors.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    vectors.save(str(tmp_path / "v.kv"))
    for name in ("v.txt", "v.bin", "v.kv"):
        loaded = load_keyed_vectors(tmp_path / name)
        assert np.allclose(loaded["circle"], vectors["circle"], atol=1e-5), name


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is fetched"):
        load_keyed_vectors(tmp_path / "none.bin")
    bad = tmp_path / "bad.txt"
    bad.write_text("this is not\na vector file\n")
    with pytest.raises(ValueError, match="bad.txt: not a readable word-vector file"):
        load_keyed_vectors(bad)
    with pytest.raises(ValueError, match="non-empty"):
        train_word2vec([[]], dim=4)
