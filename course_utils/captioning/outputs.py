"""What the caption decoders return: :class:`DecoderOutput` in training, :class:`Caption` in generation.

Both decoders (``show_tell.ShowTell``, notebook 08, and ``attention.ShowAttendTell``,
notebook 09) and both beam searches (``decoding``, ``beam_fast``) use these, so they
live apart from any one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import torch


class DecoderOutput(NamedTuple):
    """What a caption decoder returns in training (teacher forcing).

    ``logits (num_tokens, vocab_size)`` and ``targets (num_tokens,)``: one row per real
    target token (``<pad>`` never appears), in PyTorch's packed order, so
    ``F.cross_entropy(logits, targets)`` is the loss. ``alphas (batch, steps, num_pixels)``
    in the input's batch order, zero on padded steps; ``None`` for models without attention.
    ``concept_logits`` and ``concept_targets (n_images, vocab_size)``: only with the
    optional concept head of ``captioner.Captioner``.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    alphas: Optional[torch.Tensor]
    concept_logits: Optional[torch.Tensor] = None
    concept_targets: Optional[torch.Tensor] = None


@dataclass
class Caption:
    """One generated caption.

    ``ids``: word ids, without ``<start>`` and ``<end>``; ``alphas (len(ids), num_pixels)``:
    the attention used for each word (None without attention); ``score``: sum of the
    log-probabilities of the produced tokens, ``<end>`` included when produced;
    ``finished``: False when ``max_len`` was reached before ``<end>``.
    """

    ids: list[int]
    alphas: Optional[torch.Tensor]
    score: float
    finished: bool

    def normalized_score(self, length_penalty: float) -> float:
        """``score / tokens ** length_penalty`` (0 = raw sum; 1 = mean log-probability per token)."""
        tokens = len(self.ids) + int(self.finished)
        return self.score / max(tokens, 1) ** length_penalty

    def words(self, vocab: Any) -> tuple[list[str], Optional[torch.Tensor]]:
        """The caption's words (``vocab.decode``: special tokens such as ``<unk>`` dropped) and the
        attention rows of those words, ``(len(words), num_pixels)`` (None without attention)."""
        kept = [n for n, i in enumerate(self.ids) if i >= len(vocab.SPECIALS)]
        return vocab.decode(self.ids), self.alphas[kept] if self.alphas is not None else None


def best_captions(
    finished: list[list[Caption]],
    rows_of: dict[int, int],
    scores: torch.Tensor,
    tokens: torch.Tensor,
    history: Optional[torch.Tensor],
    length_penalty: float,
) -> list[Caption]:
    """The winner of every image: its best finished caption, else (``max_len`` reached) its best beam.

    ``rows_of[image] = i``: the image's beams are rows ``i * k ... i * k + k - 1`` of
    ``tokens (rows, t)`` and ``history (rows, t, num_pixels)``, with ``scores (n, k)``.
    """
    k = scores.shape[1]
    for img, i in rows_of.items():
        if not finished[img]:
            for j in range(k):
                if bool(scores[i, j].isfinite()):
                    r = i * k + j
                    a = history[r].cpu() if history is not None else None
                    finished[img].append(Caption(tokens[r].tolist(), a, float(scores[i, j]), False))
    return [max(c, key=lambda cap: cap.normalized_score(length_penalty)) for c in finished]
