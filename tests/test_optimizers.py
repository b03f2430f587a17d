"""Optimisers from their equations, stepped side by side with torch.optim; the exercise check."""

import pytest
import torch

from course_utils.basics import optimizers as opt
from course_utils.basics.optimizers import check_update_rule
from course_utils.checks import CheckError

KINDS = ["sgd", "momentum", "rmsprop", "adam"]
HYPER = {
    "sgd": [{"lr": 0.04}, {"lr": 0.01}],
    "momentum": [{"lr": 0.05}, {"lr": 0.01, "momentum": 0.5}],
    "rmsprop": [{"lr": 0.01}, {"lr": 0.003, "alpha": 0.9, "eps": 1e-6}],
    "adam": [{"lr": 0.01}, {"lr": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}],
}
UPDATES = {
    "sgd": opt.sgd_update,
    "momentum": opt.momentum_update,
    "rmsprop": opt.rmsprop_update,
    "adam": opt.adam_update,
}


@pytest.mark.parametrize("kind,hyper", [(k, h) for k in KINDS for h in HYPER[k]])
def test_our_optimisers_step_like_torch(kind, hyper):
    gaps = opt.step_side_by_side(kind, steps=30, **hyper)
    assert len(gaps) == 30 and max(gaps) < 1e-12


@pytest.mark.parametrize("kind,hyper", [(k, h) for k in KINDS for h in HYPER[k]])
def test_update_functions_follow_torch_and_move(kind, hyper):
    ours = opt.functional_trajectory(UPDATES[kind], kind, steps=6, **hyper)
    theirs = opt.torch_trajectory(kind, steps=6, **hyper)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    start, _ = opt.quadratic_problem()
    assert (ours[-1] - start).abs().max() > 1e-3  # it did move


def test_optimisers_on_a_model_with_several_parameters():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    models = [torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    frozen = [m[0].bias for m in models]  # gets no gradient: both optimisers must leave it alone
    for b in frozen:
        b.requires_grad_(False)
    ours = opt.Adam([p for p in models[0].parameters() if p.requires_grad], lr=0.01)
    theirs = torch.optim.Adam([p for p in models[1].parameters() if p.requires_grad], lr=0.01)
    for _ in range(10):
        for model, o in zip(models, (ours, theirs)):
            o.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            o.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(frozen[0], frozen[1])


def test_adam_first_step_is_about_lr_thanks_to_bias_correction():
    w, g = torch.zeros(3), torch.tensor([0.001, 1.0, 100.0])
    new, m, v = opt.adam_update(w, g, torch.zeros(3), torch.zeros(3), t=1, lr=0.01)
    torch.testing.assert_close(new, torch.full((3,), -0.01), rtol=1e-4, atol=1e-6)  # same step whatever |g|
    torch.testing.assert_close(m, 0.1 * g)


def test_optimizer_by_name_and_errors():
    w = torch.zeros(2, requires_grad=True)
    assert isinstance(opt.optimizer_by_name("momentum", [w], lr=0.1), opt.SGD)
    assert isinstance(opt.optimizer_by_name("adam", [w], torch_version=True), torch.optim.Adam)
    with pytest.raises(ValueError, match="choose from"):
        opt.optimizer_by_name("adagrad", [w])
    with pytest.raises(ValueError, match="empty"):
        opt.SGD([], lr=0.1)


def test_path_2d_goes_downhill():
    bowl = lambda w: w[0] ** 2 + 10 * w[1] ** 2
    path = opt.path_2d("adam", bowl, (2.0, 1.0), steps=200, lr=0.05)
    assert path.shape == (201, 2)
    assert bowl(path[-1]) < 0.01 * bowl(path[0])


# --------------------------------------------------------------------------- the exercise check
@pytest.mark.parametrize("kind", KINDS)
def test_check_update_rule_accepts_the_reference(kind, capsys):
    check_update_rule(UPDATES[kind], kind, lr=0.05)
    assert "matches torch.optim" in capsys.readouterr().out


def adam_without_bias_correction(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    m = beta1 * m + (1 - beta1) * grad
    v = beta2 * v + (1 - beta2) * grad**2
    return param - lr * m / (v.sqrt() + eps), m, v


def adam_forgetting_its_state(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
    new_m = beta1 * m + (1 - beta1) * grad
    new_v = beta2 * v + (1 - beta2) * grad**2
    step = lr * (new_m / (1 - beta1**t)) / ((new_v / (1 - beta2**t)).sqrt() + eps)
    return param - step, m, v  # returns the old moments


def rmsprop_eps_inside_the_root(param, grad, square_avg, lr=0.01, alpha=0.99, eps=1e-8):
    square_avg = alpha * square_avg + (1 - alpha) * grad**2
    return param - lr * grad / (square_avg + eps).sqrt(), square_avg


def test_check_update_rule_points_at_the_equation():
    with pytest.raises(CheckError, match=r"step 1 of 5.*\n.*equation itself"):
        check_update_rule(adam_without_bias_correction, "adam")


def test_check_update_rule_points_at_the_state():
    with pytest.raises(CheckError, match=r"step 2 of 5.*\n.*state"):
        check_update_rule(adam_forgetting_its_state, "adam")


def test_check_update_rule_catches_eps_in_the_wrong_place():
    with pytest.raises(CheckError, match="where eps goes"):
        check_update_rule(rmsprop_eps_inside_the_root, "rmsprop", eps=1e-3)


def test_check_update_rule_explains_a_wrong_return_value():
    with pytest.raises(CheckError, match=r"must return 3 tensor\(s\) as a tuple but returned Tensor"):
        check_update_rule(lambda w, g, m, v, t, lr, b1, b2, eps: w - lr * g, "adam", name="adam_update")
    with pytest.raises(CheckError, match="returned NoneType"):
        check_update_rule(lambda w, g, lr: None, "sgd")


# --------------------------------------------------------------------------- RMSprop with momentum, the class check
def test_rmsprop_with_momentum_matches_torch():
    assert max(opt.step_side_by_side("rmsprop", steps=30, lr=0.01, momentum=0.9)) < 1e-12
    assert max(opt.step_side_by_side("rmsprop", steps=30, lr=0.003, alpha=0.8, eps=0.1, momentum=0.5)) < 1e-12


def test_rmsprop_momentum_update_without_momentum_is_rmsprop():
    g = torch.Generator().manual_seed(0)
    w, grad, s = (torch.randn(4, generator=g, dtype=torch.float64) for _ in range(3))
    s = s.abs()
    new_w, new_s, _ = opt.rmsprop_momentum_update(w, grad, s, torch.zeros(4, dtype=torch.float64), 0.1, 0.9, 1e-8, 0.0)
    ref_w, ref_s = opt.rmsprop_update(w, grad, s, 0.1, 0.9, 1e-8)
    assert torch.allclose(new_w, ref_w) and torch.allclose(new_s, ref_s)


def test_adam_first_step_without_correction_is_about_3_times_too_large():
    """The docstring's claim: uncorrected, the first step is lr (1 - b1) / sqrt(1 - b2), about 3.2 lr."""
    g = torch.tensor([0.001, 1.0, 100.0], dtype=torch.float64)
    zeros = torch.zeros(3, dtype=torch.float64)
    corrected, m, v = opt.adam_update(zeros, g, zeros, zeros, 1, lr=0.01)
    uncorrected = -0.01 * m / (v.sqrt() + 1e-8)
    assert torch.allclose(corrected, torch.full((3,), -0.01, dtype=torch.float64), rtol=1e-4)
    assert torch.allclose(uncorrected / corrected, torch.full((3,), 0.1 / 0.001**0.5, dtype=torch.float64), rtol=1e-3)


def test_check_optimizer_accepts_the_package_and_names_the_usual_mistakes():
    from course_utils.basics.optimizer_checks import check_optimizer

    for hyper in [{}, {"momentum": 0.9}, {"lr": 0.05, "alpha": 0.9, "eps": 0.1}]:
        check_optimizer(opt.RMSprop, "rmsprop", **hyper)

    class NotInPlace(opt.RMSprop):
        def step(self):
            for p in self.params:
                p = p - 1.0  # noqa: F841 - the mistake under test: rebinds a name, the model never sees it

    class NoneGradients(opt.RMSprop):
        @torch.no_grad()
        def step(self):
            for p in self.params:
                p.sub_(0.01 * p.grad)

    with pytest.raises(CheckError, match="in place"):
        check_optimizer(NotInPlace, "rmsprop")
    with pytest.raises(CheckError, match="None"):
        check_optimizer(NoneGradients, "rmsprop")
    ignores_momentum = lambda params, **hyper: opt.RMSprop(params, **{**hyper, "momentum": 0.0})  # noqa: E731
    with pytest.raises(CheckError, match="carries over"):  # step 1 is the same with or without momentum
        check_optimizer(ignores_momentum, "rmsprop", name="RMSprop", momentum=0.9)
