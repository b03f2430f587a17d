"""Recurrent cells from their equations, and the vanishing gradient measured (notebook 06).

Written by hand because the notebook teaches them; each is checked against PyTorch's
own cell (``nn.RNNCell``, ``nn.LSTMCell``) with the *same* weights, so a student can
trust that the equations below are exactly what the library computes.

Vanilla RNN::

    h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)

LSTM, with the notation of the master's thesis (equations 5-10), every gate reading the
concatenation ``[h_{t-1}, x_t]``::

    f_t = sigmoid(W_f [h_{t-1}, x_t] + b_f)        forget gate            (5)
    i_t = sigmoid(W_i [h_{t-1}, x_t] + b_i)        input gate             (6)
    N_t = tanh(W_n [h_{t-1}, x_t] + b_n)           new candidate memory   (7)
    C_t = C_{t-1} * f_t + N_t * i_t                cell state             (8)
    O_t = sigmoid(W_o [h_{t-1}, x_t] + b_o)        output gate            (9)
    h_t = O_t * tanh(C_t)                          hidden state           (10)

Shapes: ``x (batch, input_size)``, ``h`` and ``C`` ``(batch, hidden_size)``,
each ``W_* (hidden_size, hidden_size + input_size)``, each ``b_* (hidden_size,)``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

GATES = ("f", "i", "n", "o")  # the master's thesis' names: forget, input, new memory, output
TORCH_ORDER = ("i", "f", "n", "o")  # order of the four blocks in nn.LSTMCell's weights (i, f, g, o)


# --------------------------------------------------------------------------- vanilla RNN
def rnn_step(
    x: torch.Tensor, h: torch.Tensor, W_xh: torch.Tensor, W_hh: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """One RNN step ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)``.

    ``x (batch, input_size)``, ``h (batch, hidden)``, ``W_xh (hidden, input_size)``,
    ``W_hh (hidden, hidden)``, ``b (hidden,)`` -> ``(batch, hidden)``.
    """
    return torch.tanh(x @ W_xh.T + h @ W_hh.T + b)


def rnn_weights_from_torch(cell: nn.RNNCell) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W_xh, W_hh, b)`` of a tanh ``nn.RNNCell`` (its two biases add up to our one ``b``)."""
    if cell.nonlinearity != "tanh":
        raise ValueError(f"expected a tanh RNNCell, got nonlinearity={cell.nonlinearity!r}")
    return cell.weight_ih.detach(), cell.weight_hh.detach(), (cell.bias_ih + cell.bias_hh).detach()


# --------------------------------------------------------------------------- LSTM
def lstm_step(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    W: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step, equations (5)-(10) of the master's thesis. Returns ``(h_t, C_t)``, each ``(batch, hidden)``.

    ``W[g] (hidden, hidden + input_size)`` and ``b[g] (hidden,)`` for ``g`` in ``"f", "i", "n", "o"``.
    """
    hx = torch.cat([h, x], dim=1)  # [h_{t-1}, x_t]: (batch, hidden + input_size)
    f = torch.sigmoid(hx @ W["f"].T + b["f"])  # (5) what to keep of C_{t-1}
    i = torch.sigmoid(hx @ W["i"].T + b["i"])  # (6) how much new memory to write
    n = torch.tanh(hx @ W["n"].T + b["n"])  # (7) the candidate memory, in (-1, 1)
    c = c * f + n * i  # (8) additive update: the gradient path that does not vanish
    o = torch.sigmoid(hx @ W["o"].T + b["o"])  # (9) what to show of the memory
    h = o * torch.tanh(c)  # (10)
    return h, c


def lstm_weights_from_torch(cell: nn.LSTMCell) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Weights ``(W, b)`` in the master's thesis' notation, equal to those of ``cell``.

    ``nn.LSTMCell`` stacks the four gates (order i, f, g, o; its "g" is our ``N``) in
    ``weight_ih (4*hidden, input_size)`` and ``weight_hh (4*hidden, hidden)``, with two
    bias vectors. Our ``W_g`` acts on ``[h, x]``, so it is ``[weight_hh_g | weight_ih_g]``.
    """
    w_ih = cell.weight_ih.detach().chunk(4)
    w_hh = cell.weight_hh.detach().chunk(4)
    bias = (cell.bias_ih + cell.bias_hh).detach().chunk(4)
    W = {g: torch.cat([w_hh[k], w_ih[k]], dim=1) for k, g in enumerate(TORCH_ORDER)}
    b = {g: bias[k] for k, g in enumerate(TORCH_ORDER)}
    return W, b


class LSTMCellScratch(nn.Module):
    """An LSTM cell whose parameters are the master's thesis' ``W_f, W_i, W_n, W_o`` and biases.

    Same interface as ``nn.LSTMCell``: ``cell(x, (h, c)) -> (h, c)``.
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = hidden_size**-0.5  # nn.LSTMCell's initialisation: U(-1/sqrt(hidden), 1/sqrt(hidden))
        self.W = nn.ParameterDict(
            {g: nn.Parameter(torch.empty(hidden_size, hidden_size + input_size).uniform_(-bound, bound)) for g in GATES}
        )
        self.b = nn.ParameterDict({g: nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound)) for g in GATES})

    @classmethod
    def from_torch(cls, cell: nn.LSTMCell) -> LSTMCellScratch:
        """A scratch cell sharing the weights of ``cell`` (copied), for checking one against the other."""
        new = cls(cell.input_size, cell.hidden_size)
        W, b = lstm_weights_from_torch(cell)
        with torch.no_grad():
            for g in GATES:
                new.W[g].copy_(W[g])
                new.b[g].copy_(b[g])
        return new

    def forward(
        self, x: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (batch, input_size)``, ``state = (h, c)`` each ``(batch, hidden)`` (zeros if None)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        return lstm_step(x, state[0], state[1], dict(self.W), dict(self.b))


# --------------------------------------------------------------------------- vanishing gradients
def make_cell(kind: str, input_size: int, hidden_size: int, forget_bias: float = 0.0) -> nn.Module:
    """``nn.RNNCell`` (tanh) or ``nn.LSTMCell`` with PyTorch's default initialisation.

    ``forget_bias`` is added to the LSTM's forget-gate bias: 1.0 is the usual trick that
    makes an untrained LSTM remember by default (Jozefowicz et al., 2015).
    """
    if kind == "rnn":
        return nn.RNNCell(input_size, hidden_size)
    if kind == "lstm":
        cell = nn.LSTMCell(input_size, hidden_size)
        with torch.no_grad():
            cell.bias_hh[hidden_size : 2 * hidden_size] += forget_bias  # block 1 = forget gate
        return cell
    raise ValueError(f"kind must be 'rnn' or 'lstm', got {kind!r}")


def unroll(cell: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Run ``cell`` over ``inputs (steps, batch, input_size)``; the hidden state of every step.

    Returns a list of ``steps`` tensors ``(batch, hidden)``; each keeps its gradient
    (``retain_grad``) so :func:`gradient_norms` can read ``dL/dh_t``.
    """
    batch, hidden = inputs.shape[1], cell.hidden_size
    h = inputs.new_zeros(batch, hidden)
    c = inputs.new_zeros(batch, hidden)
    states = []
    for x in inputs:  # x: (batch, input_size)
        if isinstance(cell, nn.LSTMCell):
            h, c = cell(x, (h, c))
        else:
            h = cell(x, h)
        h.retain_grad()
        states.append(h)
    return states


def gradient_norms(
    kind: str,
    steps: int = 50,
    hidden_size: int = 32,
    input_size: int = 8,
    batch: int = 16,
    forget_bias: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """How much the loss at the last step still "hears" step ``t``: ``||dL/dh_t||`` for t = 1..steps.

    A fresh cell (:func:`make_cell`) reads random inputs; the loss is a fixed random
    projection of the last hidden state only, so every gradient reaching ``h_t`` had to
    travel back ``steps - t`` steps. Returns ``(steps,)`` norms averaged over the batch.
    In a vanilla RNN each step back multiplies the gradient by ``W_hh^T diag(1 - h^2)``,
    so the norms shrink geometrically: the vanishing gradient.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the cell's initialisation
    cell = make_cell(kind, input_size, hidden_size, forget_bias)
    inputs = torch.randn(steps, batch, input_size, generator=gen)
    readout = torch.randn(hidden_size, generator=gen)
    states = unroll(cell, inputs)
    loss = (states[-1] @ readout).sum()
    loss.backward()
    return np.array([s.grad.norm(dim=1).mean().item() for s in states])
