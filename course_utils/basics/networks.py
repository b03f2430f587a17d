"""Neurons, activations, softmax, cross-entropy and backpropagation by hand (notebook 03).

Everything works on torch tensors so autograd can check it. The activations and
losses are written from their formulas because the notebook teaches them; the
tests compare each one with ``torch.nn.functional``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import nn


# --------------------------------------------------------------------------- activations (the CNN slides)
def relu(x: torch.Tensor) -> torch.Tensor:
    """``max(0, x)``, elementwise, any shape (gradient 0 at ``x = 0``, as in PyTorch)."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def leaky_relu(x: torch.Tensor, slope: float = 0.1) -> torch.Tensor:
    """``max(slope * x, x)``: a small slope for negative inputs keeps their gradient alive.

    The CNN slides use ``slope = 0.1``; PyTorch's default ``negative_slope`` is 0.01.
    """
    return torch.where(x > 0, x, slope * x)


def elu(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """``x`` for ``x >= 0``, ``alpha * (exp(x) - 1)`` below: smooth, and tends to ``-alpha``."""
    negative = torch.where(x > 0, torch.zeros_like(x), x)  # exp of large positive x would overflow, even unused
    return torch.where(x > 0, x, alpha * torch.expm1(negative))


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """``1 / (1 + exp(-x))``: squashes to (0, 1); its gradient vanishes for large ``|x|``."""
    return 1 / (1 + torch.exp(-x))


# --------------------------------------------------------------------------- softmax and cross-entropy
def softmax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``exp(z_i) / sum_l exp(z_l)`` along ``dim``: scores -> probabilities that sum to 1.

    Subtracting the maximum first changes nothing mathematically but keeps ``exp``
    from overflowing (``exp(1000)`` is ``inf`` in float32).
    """
    e = torch.exp(z - z.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)


def cross_entropy(q: torch.Tensor, p: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``H(P, Q) = -sum_i P(i) log Q(i)`` along ``dim`` (natural log, in nats).

    ``q``: predicted probabilities, ``p``: true distribution (one-hot labels), same
    shape, e.g. ``(batch, classes)`` -> ``(batch,)``. ``torch.xlogy`` takes
    ``0 * log 0`` as 0, which the CNN slides' second example needs (Q has zeros where P has).
    The CNN slides: ``Q = [0.4, 0.3, 0.05, 0.05, 0.2]``, ``P = [1, 0, 0, 0, 0]`` -> ``-log 0.4 ~ 0.916``.
    """
    if q.shape != p.shape:
        raise ValueError(f"q and p must have the same shape, got {tuple(q.shape)} and {tuple(p.shape)}")
    return -torch.xlogy(p, q).sum(dim=dim)


def cross_entropy_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy from raw scores: ``logits (batch, classes)``, ``targets (batch,)`` long -> scalar.

    ``-log softmax(z)_y = logsumexp(z) - z_y``: the stable form that ``F.cross_entropy`` uses.
    """
    picked = logits.gather(1, targets.view(-1, 1)).squeeze(1)  # (batch,)
    return (torch.logsumexp(logits, dim=1) - picked).mean()


# --------------------------------------------------------------------------- the perceptron (Rosenblatt, 1958)
def perceptron_predict(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Step of a weighted sum: ``x (n, d)``, ``w (d,)`` -> ``(n,)`` int in {0, 1}."""
    return (x @ w + b > 0).astype(int)


def train_perceptron(
    x: np.ndarray, y: np.ndarray, epochs: int = 20, lr: float = 1.0
) -> tuple[np.ndarray, float, list[int]]:
    """Rosenblatt's rule: after each example, ``w += lr * (y - y_hat) * x`` and ``b += lr * (y - y_hat)``.

    ``x (n, d)``, ``y (n,)`` in {0, 1}. Returns ``w (d,)``, ``b`` and the number of
    mistakes in each epoch: it reaches 0 when a line separates the classes (AND, OR)
    and never does otherwise (XOR).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y)
    if x.ndim != 2 or y.shape != (len(x),):
        raise ValueError(f"expected x (n, d) and y (n,), got {x.shape} and {y.shape}")
    w, b, mistakes = np.zeros(x.shape[1]), 0.0, []
    for _ in range(epochs):
        wrong = 0
        for xi, yi in zip(x, y):
            error = yi - int(xi @ w + b > 0)
            w, b, wrong = w + lr * error * xi, b + lr * error, wrong + (error != 0)
        mistakes.append(int(wrong))
    return w, b, mistakes


# --------------------------------------------------------------------------- the multilayer perceptron
def make_mlp(sizes: Sequence[int], activation: type = nn.ReLU) -> nn.Sequential:
    """Fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` with ``activation`` between them.

    ``make_mlp([2, 16, 2])``: input ``(batch, 2)`` -> scores ``(batch, 2)``; no activation
    after the last layer (the loss applies softmax).
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def mlp_forward(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> torch.Tensor:
    """Scores of a one-hidden-layer ReLU network: ``x (batch, d)``, ``w1 (hidden, d)``, ``b1 (hidden,)``,
    ``w2 (classes, hidden)``, ``b2 (classes,)`` -> ``(batch, classes)`` (``nn.Linear``'s layout)."""
    return relu(x @ w1.T + b1) @ w2.T + b2


def mlp_backward(
    x: torch.Tensor, y: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of the mean cross-entropy of :func:`mlp_forward` by the chain rule, without autograd.

    ``y (batch,)`` long class indices. Returns ``(dw1, db1, dw2, db2)`` shaped like
    ``(w1, b1, w2, b2)``. Backpropagation goes layer by layer from the loss back:

    * ``dz2 = (softmax(z2) - onehot(y)) / batch``        ``(batch, classes)``
    * ``dw2 = dz2^T h``, ``db2 = sum of dz2 over the batch``
    * ``dh = dz2 w2``, ``dz1 = dh * (z1 > 0)``            ``(batch, hidden)``
      (ReLU lets the gradient through only where it was active)
    * ``dw1 = dz1^T x``, ``db1 = sum of dz1 over the batch``
    """
    z1 = x @ w1.T + b1  # (batch, hidden)
    h = relu(z1)
    z2 = h @ w2.T + b2  # (batch, classes)
    onehot = torch.nn.functional.one_hot(y, z2.shape[1]).to(z2.dtype)
    dz2 = (softmax(z2) - onehot) / len(x)
    dw2, db2 = dz2.T @ h, dz2.sum(0)
    dz1 = (dz2 @ w2) * (z1 > 0).to(z1.dtype)
    dw1, db1 = dz1.T @ x, dz1.sum(0)
    return dw1, db1, dw2, db2


# --------------------------------------------------------------------------- data and training
def two_moons(n: int = 200, noise: float = 0.2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles (scikit-learn): ``x (n, 2)`` float32, ``y (n,)`` long in {0, 1}.

    No straight line separates them: a perceptron fails, an MLP succeeds.
    """
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=noise, random_state=seed)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


LOGIC_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)  # (4, 2): the four inputs of a logic gate
LOGIC_GATES = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``with evaluating(model):`` runs the block in eval mode (dropout off, batch norm using its
    running statistics), then gives the model back the mode it had, even if the block fails."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without parameters): inputs go there."""
    return next(model.parameters(), torch.empty(0)).device


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows of ``logits (batch, classes)`` whose largest score is at ``y (batch,)``."""
    return float((logits.argmax(1) == y).float().mean())


def train_network(
    model: nn.Module,
    optimizer: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    loss_fn: Optional[nn.Module] = None,
) -> dict[str, list[float]]:
    """Full-batch training for ``steps`` steps; returns ``history = {"train_loss": [...], "train_acc": [...]}``.

    ``optimizer`` may be a ``torch.optim`` optimiser or one of ``course_utils.basics.optimizers``
    (they share ``zero_grad()`` and ``step()``). The loss is recorded before each step.
    """
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {"train_loss": [], "train_acc": []}
    for _ in range(steps):
        logits = model(x)  # (batch, classes)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history["train_loss"].append(loss.item())
        history["train_acc"].append(accuracy(logits.detach(), y))
    return history
