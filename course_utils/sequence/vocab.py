"""The vocabulary: words <-> integer ids, built from the training captions only.

Four special tokens come first, with fixed ids::

    <pad>   0   fills captions up to the batch's longest (never reaches the loss)
    <start> 1   the first input of the decoder
    <end>   2   the decoder's last output: "stop here"
    <unk>   3   any word below the frequency threshold or never seen in training

then the words seen at least ``min_freq`` times in the training captions, most frequent
first (ties in alphabetical order, so the ids are deterministic). The default threshold
``min_freq=2`` is the one of the lab report TP2 Attention (12,509 words on Flickr30k): a word
seen once cannot be learnt and mostly is a typo. Validation and test captions are never
counted, or the vocabulary would leak the held-out split.

Written by hand rather than with ``torchtext`` (no longer maintained) because it is
short and notebook 07 builds it as an exercise.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import torch

from course_utils.files import read_json, write_atomic


class Vocabulary:
    """Maps tokens to ids and back. ``itos[i]`` is the token of id ``i``; ``stoi`` the inverse."""

    PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
    SPECIALS = (PAD, START, END, UNK)

    def __init__(self, itos: Sequence[str], min_freq: int = 2, counts: Optional[dict[str, int]] = None):
        itos = list(itos)
        if tuple(itos[:4]) != self.SPECIALS:
            raise ValueError(f"a vocabulary starts with {list(self.SPECIALS)}, got {itos[:4]}")
        dupes = [w for w, c in Counter(itos).items() if c > 1]
        if dupes:
            raise ValueError(f"duplicate tokens in vocabulary: {dupes[:5]}")
        self.itos: list[str] = itos
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(itos)}
        self.min_freq = min_freq
        self.counts: dict[str, int] = dict(counts or {})  # training frequency of every token seen
        self.pad_id, self.start_id, self.end_id, self.unk_id = 0, 1, 2, 3

    # ----------------------------------------------------------------- building
    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 2) -> Vocabulary:
        """Vocabulary of the tokens seen at least ``min_freq`` times in ``token_lists``.

        ``token_lists``: one list of tokens per training caption (``text.tokenize`` output).
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        counts: Counter = Counter()
        for tokens in token_lists:
            if isinstance(tokens, str):
                raise TypeError("build expects lists of tokens; tokenize the captions first")
            counts.update(tokens)
        for special in cls.SPECIALS:
            counts.pop(special, None)
        words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
        return cls(list(cls.SPECIALS) + words, min_freq=min_freq, counts=dict(counts))

    # ----------------------------------------------------------------- using
    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, min_freq={self.min_freq})"

    def encode(self, tokens: Sequence[str], add_special: bool = True) -> list[int]:
        """Ids of ``tokens``, unknown words -> ``unk_id``; wrapped in ``<start> ... <end>`` by default."""
        ids = [self.stoi.get(t, self.unk_id) for t in tokens]
        return [self.start_id, *ids, self.end_id] if add_special else ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` (a list or a 1-D tensor), stopping at ``<end>``, without special tokens."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.end_id:
                break
            if not 0 <= i < len(self.itos):
                raise IndexError(f"id {i} is outside the vocabulary (size {len(self)})")
            if i >= len(self.SPECIALS):
                out.append(self.itos[i])
        return out

    def coverage(self, token_lists: Iterable[Sequence[str]]) -> float:
        """Share of the tokens in ``token_lists`` that are in the vocabulary (0-1)."""
        total = known = 0
        for tokens in token_lists:
            total += len(tokens)
            known += sum(t in self.stoi for t in tokens)
        return known / total if total else 0.0

    # ----------------------------------------------------------------- disk
    def to_dict(self) -> dict:
        return {"itos": self.itos, "min_freq": self.min_freq, "counts": self.counts}

    def save(self, path: Union[str, Path]) -> Path:
        """Write JSON atomically (temporary file in the same folder, then ``os.replace``)."""
        return write_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def from_dict(cls, data: dict, source: str = "vocabulary") -> Vocabulary:
        if not isinstance(data, dict) or not isinstance(data.get("itos"), list):
            raise ValueError(f"{source}: expected a JSON object with an 'itos' list")
        try:
            return cls(data["itos"], min_freq=int(data.get("min_freq", 2)), counts=data.get("counts"))
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: Union[str, Path]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`; clear errors for a missing or broken file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no vocabulary file")
        return cls.from_dict(read_json(path), source=str(path))


def pad_captions(captions: list[torch.Tensor], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(length_i,)`` id tensors -> ``(batch, max_len)`` padded with ``pad_id``, ``(batch,)`` lengths."""
    lengths = torch.tensor([len(c) for c in captions], dtype=torch.long)
    padded = torch.full((len(captions), int(lengths.max())), pad_id, dtype=torch.long)
    for i, c in enumerate(captions):
        padded[i, : len(c)] = c
    return padded, lengths
