"""The fast path of beam search: the same captions as ``decoding.beam_search``, less work on a CPU.

``course_utils.captioning.decoding.beam_search`` is the version to read: it follows the
textbook. This module gives the same captions and scores (``tests/test_decoding.py``
checks it on random weights) with four changes that only save time:

1. **features shared by beams**: the first ``decoder.beam_invariant_state`` state tensors
   belong to the image (its features), not to a beam; they keep one row per image
   instead of being copied ``k`` times and reordered at every step;
2. **first step once per image**: all ``k`` beams start identical, so the first step runs
   on one row per image and its result is then copied to the ``k`` rows;
3. **top-k of each row first** (:func:`row_topk`): only a row's ``k`` best words can be
   among its image's ``k`` best extensions, so the image's top-k runs on ``k x k``
   candidates instead of ``k x vocab_size``, and the log-softmax is computed only for
   those words (:func:`log_normalizer`);
4. **finished images leave the batch**: an image with ``k`` finished captions stops being
   decoded.

:func:`~course_utils.captioning.decoding.decode` and the benchmark use this path;
``docs/benchmarks.md`` holds the measurements.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from course_utils.captioning.outputs import Caption, best_captions


def log_normalizer(logits: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """``log sum_w exp(logits_w)`` per row, ``(rows, 1)``, for ``logits (rows, vocab_size)``.

    ``best (rows, 1)``, the row's largest logit, is subtracted before ``exp`` so nothing
    overflows; then ``log p(w) = logits_w - log_normalizer``. Written out instead of
    ``torch.logsumexp`` because the caller already knows ``best``, which makes it faster
    on a CPU (``docs/benchmarks.md``). Overwrites nothing: ``logits - best`` is a new tensor.
    """
    return best + (logits - best).exp_().sum(dim=1, keepdim=True).log_()


def row_topk(logits: torch.Tensor, k: int, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits.topk(k, dim=1)`` (values best first, and their word ids), in two stages.

    Cut each row into blocks of ``block`` words and take each block's maximum (a fast
    reduction); a row's k best words lie in the k blocks with the largest maxima (a block
    holding one of them has a maximum at least as large, and fewer than k blocks can hold
    larger words), so ``topk`` then runs on ``k * block`` words instead of the vocabulary.
    For a few rows (one image's beams), a small vocabulary or a GPU (one fast kernel),
    plain ``topk`` is used.
    """
    rows, vocab_size = logits.shape
    n_blocks = vocab_size // block
    if logits.device.type != "cpu" or rows < 16 or n_blocks <= 4 * k:
        return logits.topk(k, dim=1)
    blocks = logits[:, : n_blocks * block].unflatten(1, (n_blocks, block))  # (rows, n_blocks, block), a view
    chosen = blocks.amax(dim=2).topk(k, dim=1).indices  # (rows, k): the blocks to search
    words = chosen[:, :, None] * block + torch.arange(block, device=logits.device)  # (rows, k, block)
    tail = torch.arange(n_blocks * block, vocab_size, device=logits.device).expand(rows, -1)  # the partial block
    words = torch.cat([words.flatten(1), tail], dim=1)  # (rows, k * block + len(tail)): the candidates
    values, index = logits.gather(1, words).topk(k, dim=1)
    return values, words.gather(1, index)


@torch.no_grad()
def fast_beam_search(
    decoder: nn.Module,
    features: torch.Tensor,
    start_id: int,
    end_id: int,
    beam_size: int = 3,
    max_len: int = 20,
    length_penalty: float = 0.0,
) -> list[Caption]:
    """``decoding.beam_search`` with the four savings of this module; same arguments, same result.

    ``features (batch, num_pixels, encoder_dim)``; rows ``i * beam_size + j`` hold beam ``j``
    of image ``i`` among the images still being decoded.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    batch, k = features.shape[0], beam_size
    device = features.device
    fixed = getattr(decoder, "beam_invariant_state", 0)  # state tensors with one row per image
    state = decoder.init_state(features)  # one row per image until the first word
    words = torch.full((batch,), start_id, dtype=torch.long, device=device)  # (batch,)
    scores = torch.full((batch, k), float("-inf"), device=device)  # (batch, k)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first one
    tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # (rows, t)
    history: Optional[torch.Tensor] = None  # (rows, t, num_pixels)
    images = torch.arange(batch)  # (n,): the images still decoded
    finished: list[list[Caption]] = [[] for _ in range(batch)]
    for t in range(max_len):
        logits, state, alpha = decoder.step(state, words)  # (rows, vocab_size)
        logits = logits.float()
        row_logits, row_words = row_topk(logits, k)  # (rows, k) each, best first
        row_logp = row_logits - log_normalizer(logits, row_logits[:, :1])  # (rows, k): log-softmax of those words
        if t == 0:  # computed once per image: copy to the k beams now
            state = tuple(s if j < fixed else s.repeat_interleave(k, dim=0) for j, s in enumerate(state))
            row_logp, row_words = row_logp.repeat_interleave(k, dim=0), row_words.repeat_interleave(k, dim=0)
            alpha = alpha.repeat_interleave(k, dim=0) if alpha is not None else None
        n = len(images)
        candidates = (scores.reshape(-1, 1) + row_logp).reshape(n, k * k)  # (n, k * k)
        top, index = candidates.topk(k, dim=1)  # (n, k): best scores and their candidate index
        rows = (torch.arange(n, device=device)[:, None] * k + index // k).reshape(-1)  # (n * k,) parent rows
        words = row_words.reshape(n, k * k).gather(1, index).reshape(-1)  # (n * k,)
        state = tuple(s if j < fixed else s[rows] for j, s in enumerate(state))
        tokens = torch.cat([tokens[rows], words[:, None]], dim=1)  # (n * k, t + 1)
        if alpha is not None:
            step_alpha = alpha[rows].float()[:, None]  # (n * k, 1, num_pixels)
            history = step_alpha if history is None else torch.cat([history[rows], step_alpha], dim=1)
        ended = (words == end_id).reshape(n, k) & top.isfinite()  # (n, k)
        for i, j in ended.nonzero().tolist():
            r = i * k + j
            a = history[r, :-1].cpu() if history is not None else None
            finished[int(images[i])].append(Caption(tokens[r, :-1].tolist(), a, float(top[i, j]), True))
        scores = top.masked_fill(ended, float("-inf"))  # a finished beam grows no more
        keep = torch.tensor([len(finished[int(img)]) < k for img in images], device=device)  # (n,)
        if t == max_len - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):  # drop the images that are done
            rows = (torch.nonzero(keep)[:, 0:1] * k + torch.arange(k, device=device)).reshape(-1)
            state = tuple(s[keep] if j < fixed else s[rows] for j, s in enumerate(state))
            tokens, words = tokens[rows], words[rows]
            history = history[rows] if history is not None else None
            scores, images = scores[keep], images[keep.cpu()]
    unfinished = {int(img): i for i, img in enumerate(images.tolist())}
    return best_captions(finished, unfinished, scores, tokens, history, length_penalty)

