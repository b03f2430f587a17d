"""The scratch RNN/LSTM equal PyTorch's cells with shared weights; gradients vanish as measured."""

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.sequence.rnn_cells import (
    LSTMCellScratch,
    gradient_norms,
    lstm_step,
    lstm_weights_from_torch,
    make_cell,
    rnn_step,
    rnn_weights_from_torch,
)


@pytest.mark.parametrize("input_size,hidden,batch", [(1, 1, 1), (5, 7, 3), (16, 32, 8)])
def test_lstm_step_equals_lstmcell(input_size, hidden, batch):
    torch.manual_seed(input_size)
    cell = nn.LSTMCell(input_size, hidden)
    W, b = lstm_weights_from_torch(cell)
    x, h, c = torch.randn(batch, input_size), torch.randn(batch, hidden), torch.randn(batch, hidden)
    h_ref, c_ref = cell(x, (h, c))
    h_new, c_new = lstm_step(x, h, c, W, b)
    torch.testing.assert_close(h_new, h_ref.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(c_new, c_ref.detach(), atol=1e-6, rtol=1e-5)


def test_scratch_cell_matches_over_a_sequence_and_in_gradients():
    torch.manual_seed(0)
    ref = nn.LSTMCell(4, 6)
    mine = LSTMCellScratch.from_torch(ref)
    xs = torch.randn(10, 3, 4)
    state_ref = state_mine = None
    for x in xs:
        state_ref = ref(x, state_ref)
        state_mine = mine(x, state_mine)
    torch.testing.assert_close(state_mine[0], state_ref[0], atol=1e-5, rtol=1e-4)
    state_ref[0].sum().backward()
    state_mine[0].sum().backward()
    forget_rows = slice(6, 12)  # nn.LSTMCell block 1 = forget gate; our W["f"] = [W_hh | W_ih]
    torch.testing.assert_close(mine.W["f"].grad[:, 6:], ref.weight_ih.grad[forget_rows], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine.W["f"].grad[:, :6], ref.weight_hh.grad[forget_rows], atol=1e-5, rtol=1e-4)


def test_scratch_cell_starts_from_zeros():
    cell = LSTMCellScratch(3, 5)
    h, c = cell(torch.randn(2, 3))
    assert h.shape == c.shape == (2, 5)
    assert len(list(cell.parameters())) == 8  # four W, four b


def test_rnn_step_equals_rnncell():
    torch.manual_seed(1)
    cell = nn.RNNCell(3, 5)
    x, h = torch.randn(4, 3), torch.randn(4, 5)
    torch.testing.assert_close(rnn_step(x, h, *rnn_weights_from_torch(cell)), cell(x, h).detach())
    with pytest.raises(ValueError, match="tanh"):
        rnn_weights_from_torch(nn.RNNCell(3, 5, nonlinearity="relu"))


def test_rnn_gradient_vanishes_and_forget_bias_keeps_it():
    rnn = gradient_norms("rnn", steps=30)
    lstm = gradient_norms("lstm", steps=30, forget_bias=3.0)
    assert rnn.shape == (30,)
    assert rnn[0] < 1e-4 * rnn[-1]  # 29 steps back, the RNN gradient has all but vanished
    assert lstm[0] > 1e3 * rnn[0]
    assert np.all(np.isfinite(rnn)) and np.all(np.isfinite(lstm))


def test_make_cell_forget_bias_and_errors():
    torch.manual_seed(0)
    plain = make_cell("lstm", 2, 4)
    torch.manual_seed(0)
    biased = make_cell("lstm", 2, 4, forget_bias=1.0)
    diff = (biased.bias_hh - plain.bias_hh).detach()
    torch.testing.assert_close(diff, torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 8))  # only the forget block
    assert isinstance(make_cell("rnn", 2, 4), nn.RNNCell)
    with pytest.raises(ValueError, match="'gru'"):
        make_cell("gru", 2, 4)


def test_plot_gradient_norms():
    import matplotlib.pyplot as plt

    from course_utils.plotting import plot_gradient_norms

    fig = plot_gradient_norms({"rnn": gradient_norms("rnn", steps=5), "lstm": gradient_norms("lstm", steps=5)})
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
    assert list(ax.lines[0].get_xdata()) == [4, 3, 2, 1, 0]
    plt.close(fig)


# --------------------------------------------------------------------------- a whole layer over padded sequences
def test_lstm_forward_equals_nn_lstm_on_packed_sequences():
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from course_utils.sequence.rnn_cells import lstm_forward

    torch.manual_seed(0)
    layer = nn.LSTM(4, 3)
    W, b = lstm_weights_from_torch(layer)
    xs, h0, c0 = torch.randn(6, 4, 4), torch.randn(4, 3), torch.randn(4, 3)
    lengths = torch.tensor([6, 1, 3, 5])
    with torch.no_grad():
        packed, (h_ref, c_ref) = layer(pack_padded_sequence(xs, lengths, enforce_sorted=False), (h0[None], c0[None]))
        out, (h, c) = lstm_forward(xs, W, b, (h0, c0), lengths)
        full, (h_full, _) = lstm_forward(xs, W, b)
        full_ref, (h_full_ref, _) = layer(xs)
    assert torch.allclose(out, pad_packed_sequence(packed, total_length=6)[0], atol=1e-6)
    assert torch.allclose(h, h_ref[0], atol=1e-6) and torch.allclose(c, c_ref[0], atol=1e-6)
    assert torch.allclose(full, full_ref, atol=1e-6) and torch.allclose(h_full, h_full_ref[0], atol=1e-6)


def test_lstm_weights_from_torch_refuses_layers_without_one_w_per_gate():
    with pytest.raises(ValueError, match="one-layer"):
        lstm_weights_from_torch(nn.LSTM(3, 2, num_layers=2))
    with pytest.raises(ValueError, match="one-direction"):
        lstm_weights_from_torch(nn.LSTM(3, 2, bidirectional=True))
