"""Word2Vec embeddings for the decoder (the short report initialises its embedding layer this way).

* ``train_word2vec(token_lists, dim, seed)`` trains gensim's skip-gram on the training
  captions (a few seconds for Flickr8k) and returns its ``KeyedVectors``.
* ``load_keyed_vectors(path)`` reads pretrained vectors instead: gensim's own ``.kv``
  files or the word2vec format (``.bin`` binary, ``.txt``/``.vec`` text, e.g. GoogleNews
  or fastText ``.vec``). Nothing is downloaded here; on Colab, download the file first.
* ``embedding_matrix(vectors, vocab)`` lines the vectors up with the vocabulary:
  ``(vocab_size, dim)`` with row ``i`` for ``vocab.itos[i]``, and reports the coverage
  (share of vocabulary words that had a vector). Words without one get small random
  vectors of the same scale; ``<pad>`` gets zeros.

Copy the matrix into ``nn.Embedding`` with ``embedding.weight.data.copy_(matrix)``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch

from course_utils.sequence.vocab import Vocabulary


def _stable_hash(text: str) -> int:
    """CRC-32 of a word: gensim seeds each word's initial vector with a hash of the word,
    and Python's own ``hash`` changes from one process to the next (PYTHONHASHSEED)."""
    return zlib.crc32(text.encode("utf-8"))


def train_word2vec(
    token_lists: Sequence[Sequence[str]],
    dim: int = 100,
    seed: int = 0,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    sg: int = 1,
    workers: int = 1,
):
    """Skip-gram (``sg=1``) or CBOW (``sg=0``) vectors of ``dim`` numbers per word; a ``KeyedVectors``.

    ``workers=1`` (the default) and the stable word hash make training reproducible
    for a seed; more workers are faster but not deterministic.
    """
    from gensim.models import Word2Vec

    sentences = [list(t) for t in token_lists if len(t) > 0]
    if not sentences:
        raise ValueError("train_word2vec needs at least one non-empty token list")
    model = Word2Vec(
        sentences=sentences,
        vector_size=dim,
        window=window,
        min_count=min_count,
        sg=sg,
        seed=seed,
        workers=workers,
        epochs=epochs,
        hashfxn=_stable_hash,
    )
    return model.wv


def load_keyed_vectors(path: Union[str, Path]):
    """Pretrained vectors from ``path``: gensim ``.kv``/``.model``, or word2vec ``.bin``/``.txt``/``.vec``."""
    from gensim.models import KeyedVectors, Word2Vec

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no word-vector file (download it first; nothing is fetched here)")
    try:
        if path.suffix == ".kv":
            return KeyedVectors.load(str(path))
        if path.suffix == ".model":
            return Word2Vec.load(str(path)).wv
        binary = path.suffix == ".bin" or path.name.endswith(".bin.gz")
        return KeyedVectors.load_word2vec_format(str(path), binary=binary)
    except Exception as err:  # gensim raises many types for a broken file; name the file
        raise ValueError(f"{path}: not a readable word-vector file ({type(err).__name__}: {err})") from None


def embedding_matrix(vectors, vocab: Vocabulary, seed: int = 0) -> tuple[torch.Tensor, float]:
    """``(len(vocab), dim)`` float tensor, row ``i`` = vector of ``vocab.itos[i]``; and the coverage.

    Coverage = share of the vocabulary's words (special tokens excluded) found in
    ``vectors`` (0-1). Missing words and ``<start>``/``<end>``/``<unk>`` get random normal
    vectors with the standard deviation of the known ones; ``<pad>`` stays zero.
    """
    dim = vectors.vector_size
    known = np.asarray(vectors.vectors, dtype=np.float32)
    std = float(known.std()) if known.size else 0.1
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, std, size=(len(vocab), dim)).astype(np.float32)
    matrix[vocab.pad_id] = 0.0
    words = vocab.itos[len(Vocabulary.SPECIALS) :]
    found = 0
    for i, word in enumerate(words, start=len(Vocabulary.SPECIALS)):
        if word in vectors.key_to_index:
            matrix[i] = vectors[word]
            found += 1
    coverage = found / len(words) if words else 0.0
    return torch.from_numpy(matrix), coverage


def nearest(vectors, word: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` words closest to ``word`` by cosine similarity (``[]`` when ``word`` is unknown)."""
    if word not in vectors.key_to_index:
        return []
    return [(w, float(s)) for w, s in vectors.most_similar(word, topn=k)]
