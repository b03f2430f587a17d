"""Checks for the captioning exercises (notebooks 08-10): attention weights, per-step outputs, teacher-forced
scores and the masked loss.

They compare a student's result with the expected one like ``course_utils.checks.check_close``
does, and when it is wrong they try the usual mistakes and name the one that matches:
scores one step late or early, ``<pad>`` positions counted in the mean, a mean per caption,
one position too many per caption, a log-softmax over the wrong axis. The package's decoders
return packed scores (``DecoderOutput``); :func:`check_step_scores` reads them back onto
the padded grid the student works on.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils.checks import CheckError, as_array, check_close, check_shape, ok, plain, short

TOL = 1e-5


def steps_mask(steps: torch.Tensor, total: int) -> torch.Tensor:
    """``(batch, total)`` bool: True where ``t < steps[i]``, the real positions of row ``i``."""
    return torch.arange(total, device=steps.device)[None, :] < steps[:, None]


def _same(a: torch.Tensor, b: torch.Tensor, atol: float) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=TOL))


def check_step_scores(
    logits: Any, packed: torch.Tensor, steps: torch.Tensor, name: str = "logits", atol: float = 1e-4
) -> None:
    """Compare ``logits (batch, T, vocab_size)``, one row of scores per step on the padded grid, with
    the package's ``packed (num_tokens, vocab_size)`` (``pack_padded_sequence`` order, ``steps[i]``
    real steps in row ``i``). Padded steps are not compared: what a model writes there is ignored.
    """
    if not isinstance(logits, torch.Tensor):
        raise CheckError(f"{name}: expected a tensor (batch, steps, vocab_size), got {type(logits).__name__}")
    steps = steps.cpu()
    batch, total = len(steps), int(steps.max())
    if logits.dim() != 3 or logits.shape[0] != batch or logits.shape[1] < total:
        check_shape(logits, (batch, total, packed.shape[-1]), name=f"{name} (batch, steps, vocab_size)")
    logits = logits.detach().float().cpu()
    layout = pack_padded_sequence(logits, steps, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(layout._replace(data=packed.detach().float().cpu()), batch_first=True,
                                      total_length=logits.shape[1])  # fmt: skip
    mask = steps_mask(steps, logits.shape[1])  # (batch, T)
    good = torch.isclose(logits, expected, atol=atol, rtol=TOL).all(dim=-1) | ~mask  # (batch, T)
    if bool(good.all()):
        ok(name)
        return
    later = mask[:, 1:]  # steps t >= 1 whose step t - 1 is real too
    if bool(later.any()) and _same(logits[:, 1:][later], expected[:, :-1][later], atol):
        raise CheckError(f"{name}: one step late: your scores at step t are the expected scores of step t - 1. "
                         "The output of the image step predicts nothing: score only the outputs of "
                         "<start> w1 ... w_(n-1)")  # fmt: skip
    if bool(later.any()) and _same(logits[:, :-1][later], expected[:, 1:][later], atol):
        raise CheckError(f"{name}: one step early: your scores at step t are the expected scores of step t + 1")
    i, t = (int(v) for v in (~good).nonzero()[0])
    err = float((logits[i, t] - expected[i, t]).abs().max())
    where = ("the first step already differs: before <start>, the LSTM must read the image vector once and "
             "carry its state (h, c) into the words") if t == 0 else "the steps before it match"  # fmt: skip
    raise CheckError(f"{name}: wrong scores at caption {i}, step {t} (max abs error {err:.3g}); "
                     f"{int((~good).sum())} of {int(mask.sum())} real steps differ; {where}")  # fmt: skip


def _nll(logits: torch.Tensor, targets: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``-log p(target)`` at every position: ``(batch, T)``."""
    return -logits.log_softmax(dim=dim).gather(2, targets.unsqueeze(2)).squeeze(2)


def check_masked_loss(
    loss: Any, logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, name: str = "loss",
    atol: float = 1e-5,
) -> None:
    """Check ``loss`` = the mean of ``-log p(target)`` over the real positions only.

    ``logits (batch, T, vocab_size)``, ``targets (batch, T)``, ``mask (batch, T)``: True on real
    tokens, False on ``<pad>``. A wrong value is compared with the usual mistakes, and the message
    names the one it matches.
    """
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise CheckError(f"{name}: expected a scalar tensor (one number for the batch), got {shape}")
    if not loss.requires_grad and logits.requires_grad:
        raise CheckError(f"{name}: does not require grad; compute it with torch operations on the logits "
                         "(no .item(), .detach() or numpy), or backward() cannot train the model")  # fmt: skip
    logits, targets, m = logits.detach().float(), targets.to(logits.device), mask.to(logits.device).float()
    nll = _nll(logits, targets)
    expected = (nll * m).sum() / m.sum()
    value = loss.detach().float()
    if _same(value, expected, atol):
        ok(name)
        return
    padded = (f"the mean counts the <pad> positions too: only {int(m.sum())} of the {m.numel()} positions are "
              "real tokens; divide the masked sum by the number of real tokens")
    wider = torch.cat([m[:, :1], torch.maximum(m[:, 1:], m[:, :-1])], dim=1)  # one more position per row
    mistakes: list[tuple[torch.Tensor, str]] = [
        (nll.mean(), padded),
        ((nll * m).sum() / m.numel(), padded),
        (((nll * m).sum(1) / m.sum(1).clamp(min=1)).mean(),
         "a mean per caption, then over captions: every real token must weigh the same, so divide the "
         "total by the number of real tokens of the whole batch"),
        ((nll * m).sum(), "the sum over the real tokens, not their mean"),
        ((nll * wider).sum() / wider.sum(), "one position too many per caption, a <pad> counted as a target: "
                                            "a caption of n tokens (lengths) has n - 1 targets"),
    ]  # fmt: skip
    mistakes += [((_nll(logits, targets, dim=d) * m).sum() / m.sum(), f"log-softmax over the wrong axis (dim={d}): "
                  "normalise the scores over the vocabulary (dim=-1)") for d in (0, 1)]  # fmt: skip
    for wrong, why in mistakes:
        if _same(value, wrong, atol):
            raise CheckError(f"{name}: {float(value):.6g} instead of {float(expected):.6g}: {why}")
    check_close(value, expected, name=name, atol=atol)


def check_attention_weights(
    alpha: Any, shape: Optional[Sequence[int]] = None, name: str = "attention weights", atol: float = 1e-5
) -> None:
    """Check attention weights ``alpha (..., num_pixels)``: a probability distribution over
    the regions (last axis) for every image and step: no negative weight, each row sums to 1.

    The message names the first bad row and, when the rows do not sum to 1 but the
    columns do, says that the softmax ran over the wrong axis.
    """
    if shape is not None:
        check_shape(alpha, shape, name=name)
    a = as_array(alpha, name)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise CheckError(f"{name}: expected weights over regions on the last axis, got shape {a.shape}")
    if np.isnan(a).any():
        raise CheckError(f"{name}: contains NaN; look for a softmax over -inf everywhere or a division by zero")
    if (a < -atol).any():
        where = tuple(int(i) for i in np.argwhere(a < -atol)[0])
        raise CheckError(f"{name}: weight {a[where]:.4g} at {where} is negative; weights come out of a softmax")
    sums = a.sum(axis=-1)
    bad = np.argwhere(~np.isclose(sums, 1.0, atol=atol)) if sums.ndim else np.argwhere([not np.isclose(sums, 1.0)])
    if len(bad):
        row = tuple(int(i) for i in bad[0]) if sums.ndim else ()
        hint = "normalise over the regions: softmax(scores, dim=-1 or dim=1 for (batch, num_pixels))"
        if a.ndim >= 2 and np.allclose(a.sum(axis=0), 1.0, atol=atol):
            hint = "the weights sum to 1 over the first axis (the batch): the softmax ran over the wrong dimension"
        raise CheckError(f"{name}: row {row} sums to {float(sums[row]):.4g}, expected 1 ({len(bad)} of "
                         f"{sums.size} rows off); {hint}")  # fmt: skip
    ok(name)


def check_caption_steps(
    actual: Any, expected: Any, lengths: Any, name: str = "scores", atol: float = 1e-5
) -> None:
    """Compare a decoder's per-step outputs ``(batch, steps, ...)`` with the reference's.

    Caption ``i`` has ``lengths[i] - 1`` steps (``lengths`` counts ``<start>`` and ``<end>``);
    after them ``actual`` must hold zeros. The message says when a row belongs to another
    caption (the batch order was lost, e.g. captions sorted and never put back), when a
    caption that has ended still has values, and else the first caption and step that differ.
    """
    a, e = as_array(actual, name), as_array(expected, name)
    check_shape(a, e.shape, name)
    steps = [int(n) - 1 for n in np.asarray(lengths).reshape(-1)]
    close = np.isclose(a, e, atol=atol, rtol=1e-4).reshape(len(a), a.shape[1], -1).all(axis=2)  # (batch, steps)
    for i in range(len(a)):
        if not close[i].all():
            others = [j for j in range(len(a)) if j != i and np.allclose(a[i], e[j], atol=atol, rtol=1e-4)]
            if others:
                raise CheckError(f"{name}: row {i} holds the values of caption {others[0]}; return the rows in "
                                 "the input's order (sorted captions must be put back)")
    for i, n in enumerate(steps):
        if n < a.shape[1] and np.abs(a[i, n:]).max() > atol:
            raise CheckError(f"{name}: caption {i} has ended after {n} steps (length {n + 1}) but step {n} is not "
                             "zero; steps after a caption's end must stay zero (mask them or stop computing them)")
    if not close.all():
        i, t = (int(k) for k in np.argwhere(~close)[0])
        check_close(a[i, t], e[i, t], name=f"{name} of caption {i} at step {t} (first step that differs)", atol=atol)
    ok(name)


def check_captions(actual: Any, expected: Sequence[Any], name: str = "captions", atol: float = 1e-4) -> None:
    """Compare generated captions with the reference's, image by image.

    A caption has ``ids`` (word ids without ``<start>``/``<end>``), ``score`` (sum of the
    log-probabilities of its tokens), ``finished`` (it wrote ``<end>``) and ``alphas``
    ``(len(ids), num_pixels)`` or None, like ``course_utils.captioning.outputs.Caption``.
    The message names the first image and the first thing that differs, with a likely cause.
    """
    if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
        raise CheckError(f"{name}: got {short(actual, 80)}, expected a list of {len(expected)} captions, "
                         "the best one of each image")  # fmt: skip
    for i, (a, e) in enumerate(zip(actual, expected)):
        where = f"{name}, image {i}"
        if not all(hasattr(a, field) for field in ("ids", "score", "finished", "alphas")):
            raise CheckError(f"{where}: got a {type(a).__name__}; return Caption(ids, alphas, score, finished)")
        ids, score = plain(a.ids), float(a.score)
        if ids != e.ids:
            if not e.finished and len(ids) != len(e.ids):
                why = f"a caption still running after max_len steps has max_len = {len(e.ids)} words"
            elif ids[:-1] == e.ids:
                why = "the ids leave out <start> and <end>"
            elif score < e.score - atol:
                why = ("a better caption was lost: keep the k best of all k x vocab_size extensions of an image, "
                       "each with its parent's state, and stop extending finished beams")  # fmt: skip
            else:
                why = "is each candidate scored as its beam's score + log p(word)?"
            raise CheckError(f"{where}: word ids {ids} (score {score:.4f}), expected {e.ids} "
                             f"(score {e.score:.4f}); {why}")  # fmt: skip
        if bool(a.finished) != e.finished:
            raise CheckError(f"{where}: finished={a.finished}, expected {e.finished} (True when the caption "
                             "wrote <end>, False when it reached max_len)")  # fmt: skip
        if not abs(score - e.score) <= atol:
            raise CheckError(f"{where}: score {score:.5f}, expected {e.score:.5f}: the sum of the log-probabilities "
                             "(log_softmax) of every token, <end> included when the caption wrote it")  # fmt: skip
        if e.alphas is not None:
            check_close(a.alphas, e.alphas, name=f"{where}: alphas, one row per word (none for <end>)", atol=atol,
                        quiet=True)  # fmt: skip
    ok(name)
