"""Activations, softmax, cross-entropy, perceptron and hand-written backprop against torch."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.basics import networks as nb

X = torch.cat([torch.linspace(-6, 6, 101, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])  # 0 included


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (nb.relu, F.relu),
        (lambda x: nb.leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1)),
        (lambda x: nb.leaky_relu(x, 0.01), F.leaky_relu),
        (nb.elu, F.elu),
        (lambda x: nb.elu(x, 0.5), lambda x: F.elu(x, 0.5)),
        (nb.sigmoid, torch.sigmoid),
    ],
)
def test_activations_and_their_gradients_match_torch(ours, theirs):
    a, b = X.clone().requires_grad_(), X.clone().requires_grad_()
    torch.testing.assert_close(ours(a), theirs(b))
    ours(a).sum().backward()
    theirs(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_seed_relu_example():
    x = torch.tensor([[15, 20, -10, 35], [18, -110, 25, 100], [20, -15, 25, -10], [101, 75, 18, 23]])
    expected = torch.tensor([[15, 20, 0, 35], [18, 0, 25, 100], [20, 0, 25, 0], [101, 75, 18, 23]])
    assert torch.equal(nb.relu(x), expected)


def test_elu_stays_finite_far_from_zero():
    x = torch.tensor([-1000.0, 1000.0], requires_grad=True)
    y = nb.elu(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert y[0].item() == pytest.approx(-1.0)


def test_softmax_matches_torch_and_survives_large_scores():
    z = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(nb.softmax(z), torch.softmax(z, dim=-1))
    torch.testing.assert_close(nb.softmax(z, dim=0), torch.softmax(z, dim=0))
    big = nb.softmax(torch.tensor([1000.0, 999.0, -1000.0]))
    assert torch.isfinite(big).all() and big.sum().item() == pytest.approx(1.0)
    assert big[0].item() == pytest.approx(1 / (1 + math.exp(-1)))


def test_seed_cross_entropy_examples():
    p = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)
    before = nb.cross_entropy(torch.tensor([0.4, 0.3, 0.05, 0.05, 0.2], dtype=torch.float64), p)
    after = nb.cross_entropy(
        torch.tensor([0.98, 0.01, 0.0, 0.0, 0.01], dtype=torch.float64), p
    )  # zeros where P is 0: 0 log 0 = 0
    assert before.item() == pytest.approx(-math.log(0.4)) and round(before.item(), 3) == 0.916
    assert after.item() == pytest.approx(-math.log(0.98)) and round(after.item(), 2) == 0.02
    assert nb.cross_entropy(p, p).item() == 0  # a perfect prediction costs nothing


def test_cross_entropy_of_softmax_is_torch_cross_entropy():
    logits = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 3, 1, 2, 2, 0])
    onehot = F.one_hot(y, 4).double()
    torch.testing.assert_close(nb.cross_entropy(nb.softmax(logits), onehot).mean(), F.cross_entropy(logits, y))
    torch.testing.assert_close(nb.cross_entropy_logits(logits, y), F.cross_entropy(logits, y))
    with pytest.raises(ValueError, match="same shape"):
        nb.cross_entropy(torch.ones(3), torch.ones(4))


@pytest.mark.parametrize("gate,separable", [("AND", True), ("OR", True), ("XOR", False)])
def test_perceptron_learns_exactly_the_linearly_separable_gates(gate, separable):
    w, b, mistakes = nb.train_perceptron(nb.LOGIC_X, nb.LOGIC_GATES[gate], epochs=30)
    correct = np.array_equal(nb.perceptron_predict(nb.LOGIC_X, w, b), nb.LOGIC_GATES[gate])
    assert correct == separable
    assert (mistakes[-1] == 0) == separable and len(mistakes) == 30


def test_perceptron_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        nb.train_perceptron(np.zeros(4), np.zeros(4))


def test_make_mlp():
    mlp = nb.make_mlp([2, 16, 8, 3])
    assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert mlp(torch.zeros(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="at least"):
        nb.make_mlp([4])


def test_mlp_backward_matches_autograd():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (10,), generator=g)
    params = [
        torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in [(5, 3), (5,), (4, 5), (4,)]
    ]
    F.cross_entropy(nb.mlp_forward(x, *params), y).backward()
    for ours, p in zip(nb.mlp_backward(x, y, *[p.detach() for p in params]), params):
        assert ours.shape == p.shape
        torch.testing.assert_close(ours, p.grad)


def test_mlp_forward_is_an_nn_linear_network():
    mlp = nb.make_mlp([3, 5, 2]).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    w1, b1, w2, b2 = (p.detach() for p in mlp.parameters())
    torch.testing.assert_close(nb.mlp_forward(x, w1, b1, w2, b2), mlp(x))


def test_two_moons_and_train_network():
    x, y = nb.two_moons(200, seed=1)
    assert x.shape == (200, 2) and x.dtype == torch.float32 and y.dtype == torch.long and set(y.tolist()) == {0, 1}
    torch.manual_seed(0)
    model = nb.make_mlp([2, 16, 2])
    history = nb.train_network(model, torch.optim.Adam(model.parameters(), lr=0.05), x, y, steps=150)
    assert len(history["train_loss"]) == 150
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert history["train_acc"][-1] > 0.9
    assert nb.accuracy(torch.tensor([[1.0, 0], [0, 1]]), torch.tensor([0, 0])) == 0.5


def test_evaluating_restores_the_mode_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))
    with nb.evaluating(model):
        assert not model.training and not model[1].training
    assert model.training
    model.eval()
    with pytest.raises(RuntimeError), nb.evaluating(model):
        model.train()  # the block changes the mode and fails: the mode before the block comes back
        raise RuntimeError("boom")
    assert not model.training
