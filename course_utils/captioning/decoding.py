"""From a trained decoder to words: greedy decoding and beam search, batched.

Both work with any decoder exposing

* ``init_state(features) -> state``: a tuple of tensors, every one batch-first;
* ``step(state, words (batch,)) -> (logits (batch, vocab_size), state, alpha (batch, num_pixels) or None)``,

which :class:`~course_utils.captioning.attention.ShowAttendTell` and
:class:`~course_utils.captioning.show_tell.ShowTell` do. Many images are decoded at once: beam
search keeps ``batch * beam_size`` rows and reorders them with one index per step,
instead of looping over images (what the seed's notebooks and most tutorials do).

Scores are sums of log-probabilities, accumulated in float64 so that ranking is never
decided by rounding: with ``beam_size=1`` beam search returns exactly the greedy caption.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn


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


def log_normalizer(logits: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """``log sum_w exp(logits_w)`` per row, ``(rows, 1)``, for ``logits (rows, vocab_size)``.

    ``best (rows, 1)``, the row's largest logit, is subtracted before ``exp`` so nothing
    overflows; then ``log p(w) = logits_w - log_normalizer``. Written out because the
    decoders already know ``best``, and ``torch.logsumexp`` took twice as long on a CPU
    (1.6 against 0.8 ms for 192 rows of 12,509 words; ``bench``).
    """
    return best + (logits - best).exp_().sum(dim=1, keepdim=True).log_()


def row_topk(logits: torch.Tensor, k: int, block: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """``logits.topk(k, dim=1)`` (values best first, and their word ids), in two stages.

    Cut each row into blocks of ``block`` words and take each block's maximum (a fast
    reduction); a row's k best words lie in the k blocks with the largest maxima (a block
    holding one of them has a maximum at least as large, and fewer than k blocks can hold
    larger words), so ``topk`` then runs on ``k * block`` words instead of the vocabulary:
    0.7 against 1.4 ms for 192 rows of 12,509 words on a CPU (``bench``). For a few rows
    (one image's beams), a small vocabulary or a GPU (one fast kernel), plain ``topk`` is used.
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
def greedy_decode(
    decoder: nn.Module, features: torch.Tensor, start_id: int, end_id: int, max_len: int = 20
) -> list[Caption]:
    """The most likely word at every step, for ``features (batch, num_pixels, encoder_dim)``.

    Stops a caption at ``<end>`` or after ``max_len`` tokens; returns one :class:`Caption` per image.
    """
    batch = features.shape[0]
    state = decoder.init_state(features)
    words = torch.full((batch,), start_id, dtype=torch.long, device=features.device)
    scores = torch.zeros(batch, dtype=torch.float64, device=features.device)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)
    tokens, alphas = [], []
    for _ in range(max_len):
        logits, state, alpha = decoder.step(state, words)
        logits = logits.float()  # (batch, vocab_size)
        best, words = logits.max(dim=1, keepdim=True)  # (batch, 1) each
        logp = best - log_normalizer(logits, best)  # (batch, 1): log-softmax of that word
        words = words[:, 0]  # (batch,)
        scores += torch.where(done, 0.0, logp[:, 0].double())
        tokens.append(words)
        alphas.append(alpha)
        done |= words == end_id
        if bool(done.all()):
            break
    tokens_t = torch.stack(tokens, dim=1).cpu()  # (batch, steps)
    alphas_t = torch.stack(alphas, dim=1).float().cpu() if alphas[0] is not None else None  # (batch, steps, P)
    captions = []
    for i in range(batch):
        row = tokens_t[i].tolist()
        n = row.index(end_id) if end_id in row else len(row)
        a = alphas_t[i, :n].clone() if alphas_t is not None else None
        captions.append(Caption(row[:n], a, float(scores[i]), n < len(row)))
    return captions


@torch.no_grad()
def beam_search(
    decoder: nn.Module,
    features: torch.Tensor,
    start_id: int,
    end_id: int,
    beam_size: int = 3,
    max_len: int = 20,
    length_penalty: float = 0.0,
) -> list[Caption]:
    """Beam search for every image of ``features (batch, num_pixels, encoder_dim)`` at once.

    Rows ``i * beam_size + k`` hold beam ``k`` of image ``i``. A beam that emits ``<end>``
    is set aside as a finished caption; an image stops when it has ``beam_size`` of them,
    and its rows leave the batch. If no beam of an image ends within ``max_len`` tokens
    (possible with a poorly trained model), its best unfinished beam is returned.
    The winner maximises ``score / tokens ** length_penalty``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    batch, k = features.shape[0], beam_size
    device = features.device
    # The first ``fixed`` state tensors belong to the image (e.g. its features), not to a beam:
    # they keep one row per image, which the decoder shares between the image's k beams. Copying
    # them k times and reordering them at every step (batch * k * num_pixels * encoder_dim floats)
    # took most of the time of a 64-image beam search on a CPU (``python -m course_utils bench``).
    fixed = getattr(decoder, "beam_invariant_state", 0)
    state = decoder.init_state(features)  # one row per image until the first word
    words = torch.full((batch,), start_id, dtype=torch.long, device=device)
    scores = torch.full((batch, k), float("-inf"), dtype=torch.float64, device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first one
    tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # (rows, t)
    history: Optional[torch.Tensor] = None  # (rows, t, num_pixels)
    images = torch.arange(batch)  # which images the rows still belong to
    finished: list[list[Caption]] = [[] for _ in range(batch)]
    for t in range(max_len):
        logits, state, alpha = decoder.step(state, words)  # (rows, vocab_size)
        logits = logits.float()
        # Only a row's k best words can be among its image's k best extensions, so pick them
        # first: the sums and the image's top-k then run on (n, k * k) candidates instead of
        # (n, k * vocab_size) (measured: most of the search time with a 12,509-word vocabulary).
        # The log-softmax is only needed for those k words: log p = logit - logsumexp(logits).
        row_logits, row_words = row_topk(logits, k)  # (rows, k) each, best first
        row_logp = row_logits - log_normalizer(logits, row_logits[:, :1])  # (rows, k)
        if t == 0:  # the k beams of an image are still the same: computed once, now copied to k rows
            state = tuple(s if j < fixed else s.repeat_interleave(k, dim=0) for j, s in enumerate(state))
            row_logp, row_words = row_logp.repeat_interleave(k, dim=0), row_words.repeat_interleave(k, dim=0)
            alpha = alpha.repeat_interleave(k, dim=0) if alpha is not None else None
        n = len(images)
        candidates = (scores.reshape(-1, 1) + row_logp.double()).reshape(n, k * k)
        top, index = candidates.topk(k, dim=1)  # (n, k): best scores and their candidate index
        rows = (torch.arange(n, device=device)[:, None] * k + index // k).reshape(-1)  # parent rows
        words = row_words.reshape(n, k * k).gather(1, index).reshape(-1)  # (n * k,)
        state = tuple(s if j < fixed else s[rows] for j, s in enumerate(state))  # parents: same image
        tokens = torch.cat([tokens[rows], words[:, None]], dim=1)
        if alpha is not None:
            step_alpha = alpha[rows].float()[:, None]  # (n * k, 1, num_pixels)
            history = step_alpha if history is None else torch.cat([history[rows], step_alpha], dim=1)
        ended = (words == end_id).reshape(n, k) & top.isfinite()
        for i, j in ended.nonzero().tolist():
            r = i * k + j
            a = history[r, :-1].cpu() if history is not None else None
            finished[int(images[i])].append(Caption(tokens[r, :-1].tolist(), a, float(top[i, j]), True))
        scores = top.masked_fill(ended, float("-inf"))
        keep = torch.tensor([len(finished[int(img)]) < k for img in images], device=device)
        if t == max_len - 1 or not bool(keep.any()):
            break
        if not bool(keep.all()):  # drop the images that are done
            rows = (torch.nonzero(keep)[:, 0:1] * k + torch.arange(k, device=device)).reshape(-1)
            state = tuple(s[keep] if j < fixed else s[rows] for j, s in enumerate(state))
            tokens, words = tokens[rows], words[rows]
            history = history[rows] if history is not None else None
            scores, images = scores[keep], images[keep.cpu()]
    for i, img in enumerate(images.tolist()):  # max_len reached: unfinished beams are the fallback
        if not finished[img]:
            for j in range(k):
                if bool(scores[i, j].isfinite()):
                    r = i * k + j
                    a = history[r].cpu() if history is not None else None
                    finished[img].append(Caption(tokens[r].tolist(), a, float(scores[i, j]), False))
    return [max(c, key=lambda cap: cap.normalized_score(length_penalty)) for c in finished]


def decode(
    decoder: nn.Module,
    features: torch.Tensor,
    start_id: int,
    end_id: int,
    beam_size: int = 1,
    max_len: int = 20,
    length_penalty: float = 0.0,
) -> list[Caption]:
    """Greedy decoding for ``beam_size == 1``, beam search otherwise."""
    if beam_size == 1:
        return greedy_decode(decoder, features, start_id, end_id, max_len)
    return beam_search(decoder, features, start_id, end_id, beam_size, max_len, length_penalty)


@dataclass
class CaptionResult:
    """A decoded caption with what evaluation needs: ``words``, the image name, its tokenised
    ``references`` and ``alphas (len(words), num_pixels)`` (None without attention)."""

    image: str
    words: list[str]
    references: list[list[str]]
    alphas: Optional[torch.Tensor]
    score: float


@torch.no_grad()
def caption_batches(
    model: nn.Module,
    batches: Sequence[Any],
    vocab: Any,
    beam_size: int = 1,
    max_len: int = 20,
    length_penalty: float = 0.0,
    device: Optional[torch.device] = None,
) -> list[CaptionResult]:
    """Caption every batch ``(inputs, references, names)`` of an evaluation loader.

    ``model`` is a :class:`~course_utils.captioning.captioner.Captioner`; ``inputs`` are images or
    cached features; ``vocab`` turns ids into words. The model is put in eval mode.
    """
    model.eval()
    device = device or next(model.parameters()).device
    results = []
    for inputs, references, names in batches:
        features = model.encode(inputs.to(device))
        caps = decode(model.decoder, features, vocab.start_id, vocab.end_id, beam_size, max_len, length_penalty)
        for cap, refs, name in zip(caps, references, names):
            words = [vocab.itos[i] for i in cap.ids]
            results.append(CaptionResult(name, words, [list(r) for r in refs], cap.alphas, cap.score))
    return results
