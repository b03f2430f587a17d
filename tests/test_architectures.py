"""Classic architectures measured on the meta device: counts equal those of real models."""

import pytest
import torch
import torchvision.models as tvm

from course_utils.vision.architectures import (
    CLASSIC,
    LeNet5,
    architecture_table,
    build_on_meta,
    count_parameters,
    describe,
    head_input_shape,
    layer_table,
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
