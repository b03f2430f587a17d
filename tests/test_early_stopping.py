"""The shared EarlyStopping: best epoch, weights kept or not, a state that resumes exactly."""

import math

import pytest
import torch
from torch import nn

from course_utils.vision.early_stopping import EarlyStopping, should_stop

LOSSES = [1.0, 0.8, 0.85, 0.7, 0.75, 0.9, 0.95]


def test_stops_with_the_rule_of_should_stop():
    stopper = EarlyStopping(patience=2)
    decisions = [stopper.step(loss) for loss in LOSSES]
    assert decisions == [should_stop(LOSSES[: i + 1], 2) for i in range(len(LOSSES))]
    assert decisions.index(True) == 5 and stopper.best == 0.7 and stopper.best_epoch == 4


def test_patience_zero_never_stops_but_tracks_the_best():
    stopper = EarlyStopping(patience=0)
    assert not any(stopper.step(loss) for loss in LOSSES)
    assert stopper.best_epoch == 4


@pytest.mark.parametrize("keep", [True, False])
def test_best_weights_kept_only_when_asked(keep):
    model = nn.Linear(2, 1)
    stopper = EarlyStopping(patience=3, keep_weights=keep)
    stopper.step(1.0, model)
    best = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    stopper.step(2.0, model)
    assert stopper.improved is False
    stopper.restore(model)
    assert torch.equal(model.weight, best) is keep
    assert (stopper.best_state is not None) is keep


def test_state_is_plain_data_and_resumes_exactly():
    straight = EarlyStopping(patience=2, min_delta=0.01)
    first = EarlyStopping(patience=2, min_delta=0.01)
    for loss in LOSSES[:3]:
        straight.step(loss), first.step(loss)
    state = first.state_dict()
    assert state == {"patience": 2, "min_delta": 0.01, "losses": LOSSES[:3]}
    resumed = EarlyStopping(patience=99)
    resumed.load_state_dict(state)
    assert [straight.step(x) for x in LOSSES[3:]] == [resumed.step(x) for x in LOSSES[3:]]
    assert (resumed.best, resumed.best_epoch, resumed.patience) == (straight.best, straight.best_epoch, 2)
    fresh = EarlyStopping()
    fresh.load_state_dict({"patience": 1, "min_delta": 0.0, "losses": []})
    assert fresh.best == math.inf and fresh.best_epoch == 0
