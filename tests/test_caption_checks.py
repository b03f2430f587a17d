"""The captioning checks name the usual mistakes (course_utils.captioning.caption_checks)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from course_utils.captioning.caption_checks import check_masked_loss, check_step_scores, steps_mask
from course_utils.checks import CheckError

STEPS = torch.tensor([3, 5, 1, 4])  # real steps per caption


def packed(grid: torch.Tensor) -> torch.Tensor:
    return pack_padded_sequence(grid, STEPS, batch_first=True, enforce_sorted=False).data


def test_steps_mask():
    assert steps_mask(torch.tensor([2, 0, 3]), 3).tolist() == [[True, True, False], [False, False, False],
                                                                [True, True, True]]  # fmt: skip


def test_step_scores_ignore_padded_steps_and_name_a_shift():
    grid = torch.randn(4, 5, 6)
    noisy = grid.clone()
    noisy[~steps_mask(STEPS, 5)] = 100.0  # what a model writes on padded steps does not matter
    check_step_scores(noisy, packed(grid), STEPS)
    late = torch.cat([torch.zeros(4, 1, 6), grid[:, :-1]], dim=1)
    with pytest.raises(CheckError, match="one step late"):
        check_step_scores(late, packed(grid), STEPS)
    early = torch.cat([grid[:, 1:], torch.zeros(4, 1, 6)], dim=1)
    with pytest.raises(CheckError, match="one step early"):
        check_step_scores(early, packed(grid), STEPS)
    wrong = grid.clone()
    wrong[:, 0] += 1
    with pytest.raises(CheckError, match="step 0.*first step already differs"):
        check_step_scores(wrong, packed(grid), STEPS)
    with pytest.raises(CheckError, match="shape"):
        check_step_scores(grid[:, :3], packed(grid), STEPS)


@pytest.mark.parametrize("mistake, message", [
    (lambda nll, m: nll.mean(), "<pad>"),
    (lambda nll, m: ((nll * m).sum(1) / m.sum(1)).mean(), "per caption"),
    (lambda nll, m: (nll * m).sum(), "sum"),
])  # fmt: skip
def test_masked_loss_names_the_mistake(mistake, message):
    torch.manual_seed(0)
    logits, targets = torch.randn(4, 5, 7), torch.randint(1, 7, (4, 5))
    mask = steps_mask(STEPS, 5)
    nll = -logits.log_softmax(-1).gather(2, targets[..., None])[..., 0]
    check_masked_loss(nll[mask].mean(), logits, targets, mask)
    with pytest.raises(CheckError, match=message):
        check_masked_loss(mistake(nll, mask.float()), logits, targets, mask)
    with pytest.raises(CheckError, match="scalar"):
        check_masked_loss(nll, logits, targets, mask)


def test_masked_loss_must_keep_its_gradient():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    targets, mask = torch.tensor([[1, 2, 0], [3, 0, 0]]), torch.tensor([[True, True, False], [True, False, False]])
    nll = -logits.log_softmax(-1).gather(2, targets[..., None])[..., 0]
    check_masked_loss(nll[mask].mean(), logits, targets, mask)
    with pytest.raises(CheckError, match="does not require grad"):
        check_masked_loss(nll[mask].mean().detach(), logits, targets, mask)
