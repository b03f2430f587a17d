"""Classic architectures measured on the meta device: counts equal those of real models."""

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from course_utils.vision.architectures import (
    CLASSIC,
    LeNet5,
    architecture_table,
    build_on_meta,
    compound_scaling,
    compound_scaling_table,
    count_parameters,
    describe,
    factorisation_table,
    head_input_shape,
    layer_table,
    multiply_adds,
    receptive_field,
)


def test_lenet5_layer_shapes_and_parameters():
    table = layer_table(LeNet5(), (1, 1, 32, 32))
    convs = table[table["type"] == "Conv2d"]
    assert list(convs["output shape"]) == [(1, 6, 28, 28), (1, 16, 10, 10)]
    assert table["output shape"].iloc[-1] == (1, 10)
    # (5*5*1+1)*6 + (5*5*6+1)*16 + (400+1)*120 + (120+1)*84 + (84+1)*10
    assert table["params"].sum() == 61706 == count_parameters(LeNet5())


def test_meta_counts_equal_real_model_counts():
    real = tvm.mobilenet_v2(weights=None)
    info = describe("MobileNetV2")
    assert info["params"] == sum(p.numel() for p in real.parameters())
    assert info["features"] == (1, 1280, 7, 7)
    assert info["output"] == (1, 1000)
    assert head_input_shape(real, (1, 3, 64, 64)) == (1, 1280, 2, 2)


def test_meta_model_has_no_data():
    model = build_on_meta(CLASSIC["ResNet-50"][1])
    assert next(model.parameters()).device.type == "meta"
    assert count_parameters(model) == 25_557_032


def test_architecture_table_reproduces_the_slides_orders_of_magnitude():
    table = architecture_table()
    assert list(table.index) == list(CLASSIC)
    assert 60e6 < table.loc["AlexNet", "params"] < 62e6  # slides: "60M parameters"
    assert 138e6 < table.loc["VGG-16", "params"] < 139e6  # slides: "138 million parameters"
    assert table.loc["VGG-16", "size_mb"] > 500  # slides: "about 500 MB"
    assert table.loc["VGG-16", "weight_layers"] == 16
    assert table.loc["DenseNet-121", "weight_layers"] == 121
    assert table.loc["GoogLeNet", "features"] == (1, 1024, 7, 7)
    assert table.loc["ResNet-50", "features"] == (1, 2048, 7, 7)


def test_unknown_architecture_is_named():
    with pytest.raises(KeyError, match="unknown architecture 'ResNet-9000'"):
        describe("ResNet-9000")


def test_layer_table_restores_training_mode():
    model = LeNet5().train()
    layer_table(model, (2, 1, 32, 32))
    assert model.training
    assert isinstance(model(torch.zeros(1, 1, 32, 32)), torch.Tensor)


def test_factorised_convolutions_see_the_same_window_with_fewer_weights():
    table = factorisation_table(channels=64)
    assert table.loc["5x5 -> 3x3 + 3x3", "params big"] == 25 * 64 * 64 + 64
    assert table.loc["5x5 -> 3x3 + 3x3", "params factorised"] == 2 * (9 * 64 * 64 + 64)
    assert table.loc["7x7 -> 1x7 + 7x1", "params factorised"] == 2 * (7 * 64 * 64 + 64)
    assert all(table["field big"] == table["field factorised"])
    assert table.loc["7x7 -> 1x7 + 7x1", "field factorised"] == (7, 7)
    assert receptive_field(nn.Conv2d(2, 2, (1, 3), padding=(0, 1)), channels=2) == (1, 3)


def test_multiply_adds_of_known_layers():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    assert multiply_adds(conv, (1, 3, 4, 4)) == 8 * 4 * 4 * 3 * 9 + 5 * 128
    depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
    assert multiply_adds(depthwise, (1, 6, 5, 5)) == 6 * 5 * 5 * 9


def test_compound_scaling_rule_and_the_measured_efficientnets():
    rule = compound_scaling(1)
    assert abs(rule["work"] - 1.2 * 1.1**2 * 1.15**2) < 1e-12 and 1.9 < rule["work"] < 2.0
    assert abs(compound_scaling(3)["resolution"] - 1.15**3) < 1e-12
    table = compound_scaling_table(("B0", "B1"))
    assert table.loc["EfficientNet-B0", "params"] == 5_288_548
    assert 0.38e9 < table.loc["EfficientNet-B0", "multiply_adds"] < 0.40e9  # the paper: 0.39 B FLOPs
    assert 1.5 < table.loc["EfficientNet-B1", "work vs B0"] < 2.0
