"""The check of notebook 03's optimiser *class* exercise: yours and ``torch.optim``'s, step by step.

``optimizers.check_update_rule`` checks one update *function*; :func:`check_optimizer` checks a
whole optimiser class with ``torch.optim``'s interface (``zero_grad()``, ``step()``) on a tiny
network, so that what a class adds to the equations is checked too: one state per
parameter, updates made in place under ``torch.no_grad()``, parameters without a gradient
left alone, and gradients cleared by ``zero_grad``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch

from course_utils.basics.optimizers import optimizer_by_name
from course_utils.checks import CheckError, check_close, ok

Tensor = torch.Tensor

ONE_STEP_HINT = "one update differs from torch.optim: check each term of the equations, and where eps goes"
LATER_STEP_HINT = (
    "step 1 is right, so one update is fine, but what carries over from one step to the next is not: keep "
    "the running averages (and the velocity) per parameter and update them, never restart them; zero_grad() "
    "must clear the gradients"
)


def tiny_network(seed: int = 0) -> tuple[list[Tensor], Callable[[list[Tensor]], Tensor]]:
    """``(parameters, loss(parameters) -> scalar)`` of a 3 -> 4 -> 2 tanh network, float64.

    The parameters have four different shapes ``(4, 3), (4,), (2, 4), (2,)``, plus a fifth, ``(3,)``,
    that the loss never uses: after ``backward()`` its ``.grad`` is still ``None``, as for a
    frozen or unused layer.
    """
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(*s, generator=g, dtype=torch.float64) for s in [(4, 3), (4,), (2, 4), (2,)]]
    params.append(torch.ones(3, dtype=torch.float64))  # never used by the loss
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)

    def loss(ps: list[Tensor]) -> Tensor:
        w1, b1, w2, b2, _ = ps
        return ((torch.tanh(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).mean()

    return params, loss


def _failure_hint(err: Exception) -> str:
    text = str(err)
    if "NoneType" in text:
        return "a parameter whose .grad is None (the loss does not use it) must be skipped"
    if "in-place operation" in text or "requires grad" in text:
        return "change the parameters under torch.no_grad() (the update itself must not be recorded by autograd)"
    if "size of tensor" in text or "shape" in text:
        return "each parameter needs its own state, of its own shape (torch.zeros_like(p))"
    return "see the error above"


def check_optimizer(
    optimizer_class: Callable[..., Any], kind: str, steps: int = 5, name: Optional[str] = None, **hyper: Any
) -> None:
    """Step ``optimizer_class(params, **hyper)`` and ``torch.optim``'s ``kind`` side by side on :func:`tiny_network`.

    ``kind`` is a name of ``optimizers.optimizer_by_name`` (``"rmsprop"``, ...); ``hyper`` uses
    torch's argument names. Fails at the first step and parameter where the two differ, with a hint.
    """
    name = name or getattr(optimizer_class, "__name__", "optimizer")
    label = f"{name}({', '.join(f'{k}={v}' for k, v in hyper.items())})"
    start, loss = tiny_network()
    mine = [p.clone().requires_grad_(True) for p in start]
    theirs = [p.clone().requires_grad_(True) for p in start]
    reference = optimizer_by_name(kind, theirs, torch_version=True, **hyper)
    try:
        optimizer = optimizer_class(mine, **hyper)
    except Exception as err:  # noqa: BLE001 - the student's constructor: any error is reported to them
        raise CheckError(f"{label}: creating it failed with {type(err).__name__}: {err}") from None
    for step in range(1, steps + 1):
        before = [p.detach().clone() for p in mine]
        reference.zero_grad()
        loss(theirs).backward()
        reference.step()
        try:
            optimizer.zero_grad()
            loss(mine).backward()
            optimizer.step()
        except Exception as err:  # noqa: BLE001
            hint = _failure_hint(err)
            raise CheckError(f"{label}, step {step}: {type(err).__name__}: {err}\n  hint: {hint}") from None
        if all(torch.equal(p.detach(), b) for p, b in zip(mine[:4], before)):
            raise CheckError(f"{label}, step {step}: no parameter changed.\n  hint: update each parameter in place "
                             "(p.sub_(...) or p -= ... under torch.no_grad()); `p = p - ...` only rebinds a name, "
                             "and the model never sees the new tensor")
        check_close(mine[4], start[4], name=f"{label}, the parameter without a gradient after step {step} "
                    "(leave it as it is)", quiet=True)
        for i, (p, q) in enumerate(zip(mine[:4], theirs[:4])):
            try:
                check_close(p, q, name=f"{label}, parameter {i} {tuple(p.shape)} after step {step} of {steps}",
                            atol=1e-9, rtol=1e-7, quiet=True)
            except CheckError as err:
                raise CheckError(f"{err}\n  hint: {ONE_STEP_HINT if step == 1 else LATER_STEP_HINT}") from None
    ok(f"{label} (matches torch.optim over {steps} steps, every parameter)")
