"""SGD, momentum, RMSprop and Adam written from their update equations (notebook 03).

Each rule is first a plain function, ``new values = update(old values, gradient)``,
exactly as the equations read. The small classes below apply those functions to a
model's parameters with the same interface as ``torch.optim`` (``zero_grad()``,
``step()``, the same argument names and defaults), so the two can be stepped side
by side and compared number for number (:func:`step_side_by_side`).

The equations, for a parameter ``w`` with gradient ``g`` at step ``t = 1, 2, ...``:

* SGD:       ``w <- w - lr * g``
* momentum:  ``v <- mu * v + g``;  ``w <- w - lr * v``
* RMSprop:   ``s <- alpha * s + (1 - alpha) * g**2``;  ``w <- w - lr * g / (sqrt(s) + eps)``
  (with momentum, as ``torch.optim.RMSprop(momentum=mu)``: ``b <- mu * b + g / (sqrt(s) + eps)``;  ``w <- w - lr * b``)
* Adam:      ``m <- b1 * m + (1 - b1) * g``;  ``v <- b2 * v + (1 - b2) * g**2``;
  ``m_hat = m / (1 - b1**t)``;  ``v_hat = v / (1 - b2**t)``;  ``w <- w - lr * m_hat / (sqrt(v_hat) + eps)``

(the master's thesis gives RMSprop's equations, but the extracted text prints ``sqrt(S_dw + eps)`` on one
line, which does not show whether ``eps`` is inside or outside the root; PyTorch, and this file, add it
outside. The state ``v``, ``s``, ``m``, ``b`` starts at zero.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Optional

import torch

from course_utils.checks import CheckError, check_close, ok

Tensor = torch.Tensor


# --------------------------------------------------------------------------- the update rules
def sgd_update(param: Tensor, grad: Tensor, lr: float) -> Tensor:
    """Plain gradient descent: one step downhill. Returns the new ``param`` (same shape)."""
    return param - lr * grad


def momentum_update(
    param: Tensor, grad: Tensor, velocity: Tensor, lr: float, momentum: float = 0.9
) -> tuple[Tensor, Tensor]:
    """Heavy ball: the velocity accumulates past gradients. Returns ``(param, velocity)``."""
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


def rmsprop_update(
    param: Tensor, grad: Tensor, square_avg: Tensor, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """Divide each coordinate's step by the root of its running mean squared gradient.

    Returns ``(param, square_avg)``.
    """
    square_avg = alpha * square_avg + (1 - alpha) * grad**2
    return param - lr * grad / (square_avg.sqrt() + eps), square_avg


def rmsprop_momentum_update(
    param: Tensor,
    grad: Tensor,
    square_avg: Tensor,
    buffer: Tensor,
    lr: float = 0.01,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.9,
) -> tuple[Tensor, Tensor, Tensor]:
    """RMSprop whose scaled gradient feeds a velocity ``buffer``, as ``torch.optim.RMSprop(momentum=...)``.

    Returns ``(param, square_avg, buffer)``; with ``momentum=0`` it is :func:`rmsprop_update`.
    """
    square_avg = alpha * square_avg + (1 - alpha) * grad**2
    buffer = momentum * buffer + grad / (square_avg.sqrt() + eps)  # the velocity of the scaled steps
    return param - lr * buffer, square_avg, buffer


def adam_update(
    param: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
    t: int,
    lr: float = 1e-3,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor, Tensor]:
    """Momentum (``m``) plus RMSprop (``v``), both bias-corrected for their zero start. Returns ``(param, m, v)``.

    ``t`` counts steps from 1. Both moments start at 0, so their first values are too small:
    ``m = (1 - beta1) g`` and ``v = (1 - beta2) g**2``. Uncorrected, the first step would be
    ``lr (1 - beta1) / sqrt(1 - beta2) = lr * 0.1 / 0.0316``, about 3.2 times too *large* with
    the defaults; corrected, it is ``lr`` (times the sign of ``g``) whatever the size of ``g``.
    """
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    return param - lr * m_hat / (v_hat.sqrt() + eps), m, v


# --------------------------------------------------------------------------- the same rules as optimisers
class Optimizer(ABC):
    """What an optimiser needs: the parameters, one state dict per parameter, ``zero_grad`` and ``step``."""

    def __init__(self, params: Iterable[Tensor]):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimiser got an empty parameter list")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p, state in zip(self.params, self.state):
            if p.grad is not None:
                p.copy_(self.update(p, p.grad, state))

    @abstractmethod
    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> Tensor:
        """The new value of ``param``; reads and writes this parameter's ``state``."""


class SGD(Optimizer):
    """``torch.optim.SGD(params, lr, momentum)`` from :func:`sgd_update` / :func:`momentum_update`."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, momentum: float = 0.0):
        super().__init__(params)
        self.lr, self.momentum = lr, momentum

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> Tensor:
        if self.momentum == 0:
            return sgd_update(param, grad, self.lr)
        velocity = state.get("velocity", torch.zeros_like(param))
        param, state["velocity"] = momentum_update(param, grad, velocity, self.lr, self.momentum)
        return param


class RMSprop(Optimizer):
    """``torch.optim.RMSprop(params, lr, alpha, eps, momentum)`` from :func:`rmsprop_update` and
    :func:`rmsprop_momentum_update`."""

    def __init__(
        self, params: Iterable[Tensor], lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0
    ):
        super().__init__(params)
        self.lr, self.alpha, self.eps, self.momentum = lr, alpha, eps, momentum

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> Tensor:
        square_avg = state.get("square_avg", torch.zeros_like(param))
        if self.momentum == 0:
            param, state["square_avg"] = rmsprop_update(param, grad, square_avg, self.lr, self.alpha, self.eps)
            return param
        buffer = state.get("buffer", torch.zeros_like(param))
        param, state["square_avg"], state["buffer"] = rmsprop_momentum_update(
            param, grad, square_avg, buffer, self.lr, self.alpha, self.eps, self.momentum
        )
        return param


class Adam(Optimizer):
    """``torch.optim.Adam(params, lr, betas, eps)`` from :func:`adam_update`."""

    def __init__(
        self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, betas, eps

    def update(self, param: Tensor, grad: Tensor, state: dict[str, Any]) -> Tensor:
        state["t"] = state.get("t", 0) + 1
        m = state.get("m", torch.zeros_like(param))
        v = state.get("v", torch.zeros_like(param))
        param, state["m"], state["v"] = adam_update(param, grad, m, v, state["t"], self.lr, *self.betas, self.eps)
        return param


# --------------------------------------------------------------------------- side by side with torch.optim
OURS: dict[str, Callable[..., Optimizer]] = {
    "sgd": SGD,
    "momentum": lambda params, momentum=0.9, **kw: SGD(params, momentum=momentum, **kw),
    "rmsprop": RMSprop,
    "adam": Adam,
}
THEIRS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "momentum": lambda params, momentum=0.9, **kw: torch.optim.SGD(params, momentum=momentum, **kw),
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
}


def optimizer_by_name(kind: str, params: Iterable[Tensor], torch_version: bool = False, **hyper: Any) -> Any:
    """``kind`` in ``sgd, momentum, rmsprop, adam``: ours, or ``torch.optim``'s with ``torch_version=True``.

    ``hyper`` uses torch's names: ``lr``, ``momentum``, ``alpha``, ``eps``, ``betas``.
    """
    table = THEIRS if torch_version else OURS
    if kind not in table:
        raise ValueError(f"unknown optimiser {kind!r}; choose from {', '.join(table)}")
    return table[kind](params, **hyper)


def quadratic_problem(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """A small test problem: ``(start (2, 3), loss(w) -> scalar)``, a bowl with very different curvatures.

    ``loss(w) = sum(scale * (w - target)**2) + 0.1 * sum(w**4)``: the scales span 0.1 to
    10, so plain SGD and the adaptive methods take visibly different paths.
    """
    g = torch.Generator().manual_seed(seed)
    start = torch.randn(2, 3, generator=g, dtype=dtype)
    target = torch.randn(2, 3, generator=g, dtype=dtype)
    scale = torch.logspace(-1, 1, 6, dtype=dtype).view(2, 3)
    return start, lambda w: (scale * (w - target) ** 2).sum() + 0.1 * (w**4).sum()


def _run(opt: Any, w: Tensor, loss_fn: Callable[[Tensor], Tensor]) -> None:
    opt.zero_grad()
    loss_fn(w).backward()
    opt.step()


def step_side_by_side(
    kind: str, steps: int = 20, problem: Optional[tuple[Tensor, Callable]] = None, **hyper: Any
) -> list[float]:
    """Step our optimiser and ``torch.optim``'s from the same start on the same loss.

    Returns, after each step, the largest absolute difference between the two
    parameter tensors (float64 by default: differences are rounding, ~1e-16).
    """
    start, loss_fn = problem or quadratic_problem()
    ours_w = start.clone().requires_grad_(True)
    theirs_w = start.clone().requires_grad_(True)
    ours = optimizer_by_name(kind, [ours_w], **hyper)
    theirs = optimizer_by_name(kind, [theirs_w], torch_version=True, **hyper)
    gaps = []
    for _ in range(steps):
        _run(ours, ours_w, loss_fn)
        _run(theirs, theirs_w, loss_fn)
        gaps.append(float((ours_w - theirs_w).detach().abs().max()))
    return gaps


def torch_trajectory(
    kind: str, steps: int = 5, problem: Optional[tuple[Tensor, Callable]] = None, **hyper: Any
) -> list[Tensor]:
    """The parameter after each of ``steps`` steps of ``torch.optim`` on ``problem``.

    ``problem`` is ``(start, loss_fn)``, by default :func:`quadratic_problem`.
    """
    start, loss_fn = problem or quadratic_problem()
    w = start.clone().requires_grad_(True)
    opt = optimizer_by_name(kind, [w], torch_version=True, **hyper)
    out = []
    for _ in range(steps):
        _run(opt, w, loss_fn)
        out.append(w.detach().clone())
    return out


def _unpack(result: Any, n: int, name: str) -> tuple:
    """Check that an update function returned ``n`` tensors; say what it returned otherwise."""
    items = result if isinstance(result, tuple) else (result,)
    if len(items) != n or not all(isinstance(x, Tensor) for x in items):
        got = type(result).__name__ if not isinstance(result, tuple) else f"a tuple of {len(result)}"
        raise TypeError(f"{name} must return {n} tensor(s) {'as a tuple ' if n > 1 else ''}but returned {got}")
    return items


def functional_trajectory(
    update: Callable[..., Any],
    kind: str,
    steps: int = 5,
    problem: Optional[tuple[Tensor, Callable]] = None,
    **hyper: Any,
) -> list[Tensor]:
    """Apply an update *function* (yours or this file's) ``steps`` times; the parameter after each step.

    The call follows the signatures above: ``sgd`` -> ``update(w, g, lr)``; ``momentum``
    -> ``update(w, g, velocity, lr, momentum)``; ``rmsprop`` -> ``update(w, g, s, lr, alpha, eps)``;
    ``adam`` -> ``update(w, g, m, v, t, lr, beta1, beta2, eps)``. ``hyper`` uses torch's
    names and defaults, so the result can be compared with :func:`torch_trajectory`.
    """
    defaults = {
        "sgd": {"lr": 1e-3},
        "momentum": {"lr": 1e-3, "momentum": 0.9},
        "rmsprop": {"lr": 0.01, "alpha": 0.99, "eps": 1e-8},
        "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8},
    }
    if kind not in defaults:
        raise ValueError(f"unknown optimiser {kind!r}; choose from {', '.join(defaults)}")
    h = {**defaults[kind], **hyper}
    start, loss_fn = problem or quadratic_problem()
    name = getattr(update, "__name__", "update")
    w, state, out = start.clone(), [torch.zeros_like(start), torch.zeros_like(start)], []
    for t in range(1, steps + 1):
        w.requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(w), w)
        w = w.detach()
        if kind == "sgd":
            (w,) = _unpack(update(w, g, h["lr"]), 1, name)
        elif kind == "momentum":
            w, state[0] = _unpack(update(w, g, state[0], h["lr"], h["momentum"]), 2, name)
        elif kind == "rmsprop":
            w, state[0] = _unpack(update(w, g, state[0], h["lr"], h["alpha"], h["eps"]), 2, name)
        else:
            w, state[0], state[1] = _unpack(
                update(w, g, state[0], state[1], t, h["lr"], *h["betas"], h["eps"]), 3, name
            )
        w = w.detach().clone()
        out.append(w.clone())
    return out


def path_2d(
    kind: str, loss_fn: Callable[[Tensor], Tensor], start: tuple[float, float], steps: int, **hyper: Any
) -> Tensor:
    """Positions ``(steps + 1, 2)`` of a 2-D point moved by our optimiser ``kind`` on ``loss_fn(w (2,)) -> scalar``."""
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = optimizer_by_name(kind, [w], **hyper)
    points = [w.detach().clone()]
    for _ in range(steps):
        _run(opt, w, loss_fn)
        points.append(w.detach().clone())
    return torch.stack(points)


# --------------------------------------------------------------------------- optimisers (notebook 03)
def check_update_rule(
    update: Callable[..., Any], kind: str, steps: int = 5, name: Optional[str] = None, **hyper: Any
) -> None:
    """Step an update *function* (``sgd``, ``momentum``, ``rmsprop`` or ``adam``) and ``torch.optim``
    side by side on a small problem; fail at the first step where the parameters differ.

    ``hyper`` uses torch's names (``lr``, ``momentum``, ``alpha``, ``eps``, ``betas``). A
    wrong first step points at the equation; a right first step followed by a wrong one
    points at the state (moving averages, step count) not carried between steps.
    """
    from course_utils.basics.optimizers import functional_trajectory, torch_trajectory

    name = name or getattr(update, "__name__", "update")
    try:
        got = functional_trajectory(update, kind, steps, **hyper)
    except TypeError as err:
        raise CheckError(f"{name}: {err}") from None
    want = torch_trajectory(kind, steps, **hyper)
    for i, (g, w) in enumerate(zip(got, want), 1):
        try:
            check_close(g, w, name=f"{name}, parameter after step {i} of {steps}", atol=1e-9, rtol=1e-7, quiet=True)
        except CheckError as err:
            hint = (
                "the update equation itself differs from torch.optim (check each term, and where eps goes)"
                if i == 1
                else "step 1 is right, so the equation is fine, but the state (moving averages, step count t) "
                "is not carried correctly from one step to the next"
            )
            raise CheckError(f"{err}\n  hint: {hint}") from None
    ok(f"{name} (matches torch.optim over {steps} steps)")
