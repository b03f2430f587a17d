"""check_output_shape: a forward pass that fails or returns the wrong shape is a message for the student."""

import pytest
import torch
from torch import nn

from course_utils.checks import CheckError, check_output_shape


def test_passes_and_returns_the_output(capsys):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    out = check_output_shape(model, torch.zeros(2, 3, 2, 2), (2, 3), name="net")
    assert out.shape == (2, 3) and "net: correct" in capsys.readouterr().out


def test_a_forward_error_names_the_input_and_the_flatten_size():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 3))
    message = r"net: the forward pass fails on an input of shape \(2, 3, 2, 2\).*flatten size"
    with pytest.raises(CheckError, match=message):
        check_output_shape(model, torch.zeros(2, 3, 2, 2), (2, 3), name="net")


def test_a_wrong_shape_names_both_shapes():
    with pytest.raises(CheckError, match=r"input of shape \(1, 4\): shape \(4,\), expected \(1, 4\)"):
        check_output_shape(lambda x: x.squeeze(), torch.zeros(1, 4), (1, 4), name="net")
