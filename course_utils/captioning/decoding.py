"""From a trained decoder to words: greedy decoding and beam search, batched.

Both work with any decoder exposing

* ``init_state(features) -> state``: a tuple of tensors, every one batch-first;
* ``step(state, words (batch,)) -> (logits (batch, vocab_size), state, alpha (batch, num_pixels) or None)``,

which :class:`~course_utils.captioning.attention.ShowAttendTell` and
:class:`~course_utils.captioning.show_tell.ShowTell` do. Many images are decoded at once:
beam search keeps ``batch * beam_size`` rows and reorders them with one index per step,
instead of looping over images.

:func:`beam_search` here is the textbook algorithm, written to be read.
:func:`decode` runs :func:`~course_utils.captioning.beam_fast.fast_beam_search`, which
gives the same captions with less work on a CPU. Scores are float32 sums of
log-probabilities (float64 would be rejected by Apple's MPS backend).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

import torch
import torch.nn as nn

from course_utils.basics.networks import evaluating, model_device
from course_utils.captioning.beam_fast import fast_beam_search
from course_utils.captioning.outputs import Caption, best_captions

__all__ = ["Caption", "CaptionResult", "beam_search", "caption_batches", "decode", "greedy_decode"]


@torch.no_grad()
def greedy_decode(
    decoder: nn.Module, features: torch.Tensor, start_id: int, end_id: int, max_len: int = 20
) -> list[Caption]:
    """The most likely word at every step, for ``features (batch, num_pixels, encoder_dim)``.

    Stops a caption at ``<end>`` or after ``max_len`` tokens; returns one :class:`Caption` per image.
    """
    batch = features.shape[0]
    state = decoder.init_state(features)
    words = torch.full((batch,), start_id, dtype=torch.long, device=features.device)  # (batch,)
    scores = torch.zeros(batch, device=features.device)  # (batch,)
    done = torch.zeros(batch, dtype=torch.bool, device=features.device)  # (batch,): <end> produced
    tokens, alphas = [], []
    for _ in range(max_len):
        logits, state, alpha = decoder.step(state, words)  # (batch, vocab_size)
        logp, words = logits.float().log_softmax(dim=1).max(dim=1)  # (batch,) each
        scores += torch.where(done, 0.0, logp)  # nothing is added after <end>
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
    trace: Optional[list[dict[str, torch.Tensor]]] = None,
) -> list[Caption]:
    """Beam search for every image of ``features (batch, num_pixels, encoder_dim)`` at once.

    Row ``i * k + j`` holds beam ``j`` of image ``i``. At each step every beam is extended
    by every word, and each image keeps its ``k`` best extensions out of ``k * vocab_size``.
    A beam that emits ``<end>`` is set aside as a finished caption; an image is done when it
    has ``k`` of them. An image with no finished caption after ``max_len`` tokens returns
    its best unfinished beam. The winner maximises ``score / tokens ** length_penalty``.

    ``trace``, a list, receives one dict per step to draw the search tree
    (``beam_tree.plot_beam_tree``): ``scores (batch, k)`` of the beams before the step,
    ``log_probs (batch, k, vocab_size)`` of their next words, and the ``k`` kept extensions
    of each image, best first: ``parents``, ``words`` and ``top`` (their scores), each ``(batch, k)``.
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    batch, k, device = features.shape[0], beam_size, features.device
    state = decoder.init_state(features.repeat_interleave(k, dim=0))  # every tensor: (batch * k, ...)
    words = torch.full((batch * k,), start_id, dtype=torch.long, device=device)  # (batch * k,)
    scores = torch.zeros(batch, k, device=device)  # (batch, k): log-probability of each beam
    scores[:, 1:] = float("-inf")  # the k beams start identical: only the first one is extended
    tokens = torch.zeros(batch * k, 0, dtype=torch.long, device=device)  # (batch * k, t)
    history: Optional[torch.Tensor] = None  # (batch * k, t, num_pixels): attention of each word
    finished: list[list[Caption]] = [[] for _ in range(batch)]
    for _ in range(max_len):
        logits, state, alpha = decoder.step(state, words)  # (batch * k, vocab_size)
        logp = logits.float().log_softmax(dim=1)  # (batch * k, vocab_size)
        vocab_size = logp.shape[1]
        candidates = (scores.reshape(-1, 1) + logp).reshape(batch, k * vocab_size)  # (batch, k * vocab_size)
        top, index = candidates.topk(k, dim=1)  # (batch, k): the k best extensions of each image
        parents = (torch.arange(batch, device=device)[:, None] * k + index // vocab_size).reshape(-1)  # (batch * k,)
        words = (index % vocab_size).reshape(-1)  # (batch * k,): the word each extension adds
        if trace is not None:
            trace.append({"scores": scores.cpu(), "log_probs": logp.reshape(batch, k, -1).cpu(), "top": top.cpu(),
                          "parents": (index // vocab_size).cpu(), "words": (index % vocab_size).cpu()})
        state = tuple(s[parents] for s in state)  # each new beam continues its parent's state
        tokens = torch.cat([tokens[parents], words[:, None]], dim=1)  # (batch * k, t + 1)
        if alpha is not None:  # alpha (batch * k, num_pixels) was computed by the parents
            step_alpha = alpha[parents, None].float()  # (batch * k, 1, num_pixels)
            history = step_alpha if history is None else torch.cat([history[parents], step_alpha], dim=1)
        done = [len(f) >= k for f in finished]  # images done before this step keep their captions
        ended = (words == end_id).reshape(batch, k) & top.isfinite()  # (batch, k)
        for i, j in ended.nonzero().tolist():
            if not done[i]:
                a = history[i * k + j, :-1].cpu() if history is not None else None
                finished[i].append(Caption(tokens[i * k + j, :-1].tolist(), a, float(top[i, j]), True))
        scores = top.masked_fill(ended, float("-inf"))  # a finished beam is extended no more
        if all(len(f) >= k for f in finished):
            break
    return best_captions(finished, {i: i for i in range(batch)}, scores, tokens, history, length_penalty)


def decode(
    decoder: nn.Module,
    features: torch.Tensor,
    start_id: int,
    end_id: int,
    beam_size: int = 1,
    max_len: int = 20,
    length_penalty: float = 0.0,
) -> list[Caption]:
    """Greedy decoding for ``beam_size == 1``, beam search (its fast path) otherwise."""
    if beam_size == 1:
        return greedy_decode(decoder, features, start_id, end_id, max_len)
    return fast_beam_search(decoder, features, start_id, end_id, beam_size, max_len, length_penalty)


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
    batches: Iterable[Any],
    vocab: Any,
    beam_size: int = 1,
    max_len: int = 20,
    length_penalty: float = 0.0,
    device: Optional[torch.device] = None,
) -> list[CaptionResult]:
    """Caption every batch ``(inputs, references, names)`` of an evaluation loader.

    ``model`` is a :class:`~course_utils.captioning.captioner.Captioner`; ``inputs`` are images or
    cached features; ``vocab`` turns ids into words (``Caption.words``). The model runs in eval mode and gets its
    mode back at the end.
    """
    device = device or model_device(model)
    results = []
    with evaluating(model):
        for inputs, references, names in batches:
            features = model.encode(inputs.to(device))  # (batch, num_pixels, encoder_dim)
            caps = decode(model.decoder, features, vocab.start_id, vocab.end_id, beam_size, max_len, length_penalty)
            for cap, refs, name in zip(caps, references, names):
                words, alphas = cap.words(vocab)
                results.append(CaptionResult(name, words, [list(r) for r in refs], alphas, cap.score))
    return results
