"""Checks for the captioning exercises (notebooks 08-10): teacher-forced scores and the masked loss.

They compare a student's result with the expected one like ``course_utils.checks.check_close``
does, and when it is wrong they try the usual mistakes and name the one that matches:
scores one step late or early, ``<pad>`` positions counted in the mean, a mean per caption,
one position too many per caption, a log-softmax over the wrong axis. The package's decoders
return packed scores (``DecoderOutput``); :func:`check_step_scores` reads them back onto
the padded grid the student works on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_utils.checks import CheckError, check_close, check_shape, ok

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
