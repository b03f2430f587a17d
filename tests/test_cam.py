"""Feature maps, CAM and Grad-CAM: shapes, ranges, and Grad-CAM == CAM on a pooling network."""

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.vision.cam import activations, class_activation_map, grad_cam, normalize_map, overlay, upsample_map
from course_utils.vision.cnn import SmallCNN


class GapNet(nn.Module):
    """conv -> ReLU -> global average pooling -> linear: CAM is exact for it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


def test_class_activation_map_is_weighted_sum():
    maps = torch.randn(3, 4, 5)
    weight = torch.randn(2, 3)
    expected = weight[1, 0] * maps[0] + weight[1, 1] * maps[1] + weight[1, 2] * maps[2]
    torch.testing.assert_close(class_activation_map(maps, weight, 1), expected)
    with pytest.raises(ValueError, match="fc_weight"):
        class_activation_map(maps, torch.randn(2, 4), 0)


def test_grad_cam_equals_cam_for_a_global_pooling_network():
    torch.manual_seed(0)
    model = GapNet()
    image = torch.rand(3, 12, 12)
    cam, idx, probs = grad_cam(model, model.conv, image)
    maps = activations(model, model.conv, image[None])[0]
    expected = normalize_map(upsample_map(class_activation_map(maps, model.fc.weight.detach(), idx), (12, 12)))
    torch.testing.assert_close(cam, expected, atol=1e-5, rtol=1e-4)
    assert idx == int(probs.argmax()) and probs.sum().item() == pytest.approx(1.0)


def test_grad_cam_on_the_flatten_network_and_no_side_effects():
    torch.manual_seed(0)
    model = SmallCNN(3, image_size=16, widths=(4, 4, 4), hidden=8).train()
    cam, idx, probs = grad_cam(model, model.features[1], torch.rand(1, 3, 16, 16), class_idx=2)
    assert cam.shape == (16, 16) and idx == 2 and probs.shape == (3,)
    assert 0.0 <= cam.min() and cam.max() <= 1.0
    assert model.training and all(p.grad is None for p in model.parameters())


def test_activations_shape_and_error():
    model = SmallCNN(3, image_size=16, widths=(4, 5, 6), hidden=8)
    assert activations(model, model.features[0], torch.rand(2, 3, 16, 16)).shape == (2, 4, 8, 8)
    with pytest.raises(ValueError, match="did not run"):
        activations(model, nn.Conv2d(1, 1, 1), torch.rand(1, 3, 16, 16))


def test_normalize_map_and_overlay():
    assert torch.equal(normalize_map(torch.full((2, 2), -1.0)), torch.zeros(2, 2))
    torch.testing.assert_close(normalize_map(torch.tensor([[0.0, 2.0], [-1.0, 4.0]])),
                               torch.tensor([[0.0, 0.5], [0.0, 1.0]]))
    image = np.zeros((10, 12, 3), np.uint8)
    out = overlay(image, torch.rand(5, 6))
    assert out.shape == (10, 12, 3) and out.dtype == np.uint8 and out.max() > 0


def test_plotting_helpers_for_maps():
    import matplotlib.pyplot as plt

    from course_utils.plotting import plot_feature_maps
    from course_utils.vision.cam import plot_activation_maps

    fig = plot_feature_maps(torch.rand(20, 6, 6), max_maps=12, ncols=6)
    assert sum(1 for ax in fig.axes if ax.images) == 12
    with pytest.raises(ValueError, match=r"\(C, h, w\)"):
        plot_feature_maps(torch.rand(6, 6))
    fig2 = plot_activation_maps([np.zeros((8, 8, 3), np.uint8)] * 2, [torch.rand(4, 4)] * 2, titles=["a", "b"])
    assert len(fig2.axes) == 4 and fig2.axes[0].get_title() == "a"
    plt.close("all")
