"""The exercises of notebooks 01-03: the master solution passes its grade cell, and typical
wrong answers are rejected, by the visible checks where the student can see why, else by a
hidden test.

Each grade cell runs in-process after a solution (the master's, or a wrong one written
here), the way the grader runs it in the student's kernel.
"""

import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.checks import CheckError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
HIDDEN = "### BEGIN HIDDEN TESTS"


def cells(notebook: str) -> dict[str, str]:
    """grade_id -> source, for the solution and grade cells of a notebook."""
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if "nbgrader" in c.get("metadata", {})}


def run(solution: str, tests: str) -> None:
    namespace = {"np": np, "torch": torch, "F": F, "math": math}
    exec(solution, namespace)  # noqa: S102 - course code written in this file or in the master notebook
    exec(tests, namespace)  # noqa: S102


def visible(tests: str) -> str:
    return tests.split(HIDDEN)[0]


NB = {"01": "01_images_as_arrays.ipynb", "02": "02_filtering_and_convolution.ipynb",
      "03": "03_neural_networks_and_optimisers.ipynb"}
EXERCISES = {
    "01": ["01_to_grey", "01_bmp_size", "01_bmp_bytes", "01_psnr", "01_histogram", "01_equalize"],
    "02": ["02_conv2d", "02_output_size", "02_conv2d_layer", "02_conv1d", "02_median_filter", "02_im2col"],
    "03": ["03_activations", "03_softmax", "03_cross_entropy", "03_mlp_backward", "03_adam", "03_rmsprop",
           "03_training_loop"],
}


@pytest.mark.parametrize("gid", [g for gs in EXERCISES.values() for g in gs])
def test_master_solution_passes_every_check(gid):
    source = cells(NB[gid[:2]])
    run(source[gid], source[f"{gid}_tests"])


@pytest.mark.parametrize("number", list(NB))
def test_each_notebook_has_at_least_three_exercises(number):
    ids = [g for g in cells(NB[number]) if not g.endswith("_tests")]
    assert ids == EXERCISES[number] and len(ids) >= 3


# (exercise, wrong solution, where it must be caught: "visible" or "hidden")
WRONG = [
    ("01_to_grey", "def to_grey(rgb):\n    return rgb.mean(axis=2)", "visible"),  # seed 004's plain mean
    # the same in uint8, which wraps around above 255
    ("01_to_grey", "def to_grey(rgb):\n    return (rgb[:, :, 0] + rgb[:, :, 1] + rgb[:, :, 2]) / 3", "visible"),
    ("01_to_grey", "def to_grey(rgb):\n    return rgb.astype(float) @ np.array([[0.299], [0.587], [0.114]])",
     "visible"),  # shape (H, W, 1)
    ("01_bmp_size", "def bmp_size(width, height):\n    return 54 + 3 * width * height", "visible"),  # no padding
    ("01_bmp_size", "def bmp_size(width, height):\n    return 3 * width * height", "visible"),  # no header
    ("01_psnr", "def psnr(a, b):\n    return float(10 * np.log10(255**2 / np.mean((a - b) ** 2)))", "visible"),  # uint8
    ("01_psnr", "def psnr(a, b):\n    return float(20 * np.log10(255**2 / np.mean((a * 1.0 - b) ** 2)))", "visible"),
    ("01_histogram", "def histogram(grey):\n    return np.bincount(grey.ravel())", "hidden"),  # no minlength
    ("01_histogram", "def histogram(grey):\n    return np.histogram(grey, bins=256)[0]", "hidden"),  # range min..max
    ("02_conv2d", "def conv2d(image, kernel):\n    from scipy.signal import convolve2d\n"
                  "    return convolve2d(image, kernel, mode='valid')", "visible"),  # flips the kernel
    ("02_conv2d", "def conv2d(image, kernel):\n    from scipy.signal import correlate2d\n"
                  "    return correlate2d(image, kernel, mode='same')", "visible"),  # wrong size
    ("02_output_size", "def output_size(n, f, padding=0, stride=1):\n    return (n - f) // stride + 1", "visible"),
    ("02_output_size", "def output_size(n, f, padding=0, stride=1):\n    return (n - f + 2 * padding) / stride + 1",
     "visible"),
    ("02_conv1d", "def conv1d(signal, kernel, stride=1, padding=0):\n"
                  "    return np.correlate(np.pad(signal, padding), kernel, mode='valid')", "visible"),  # no stride
    ("02_median_filter", "def median_filter(image, size=3):\n    from scipy import ndimage\n"
                         "    return ndimage.median_filter(image, size, mode='constant')", "visible"),  # zero border
    ("02_median_filter", "def median_filter(image, size=3):\n    from scipy import ndimage\n"
                         "    return ndimage.uniform_filter(image, size, mode='nearest')", "visible"),  # the mean
    ("03_activations", "def leaky_relu(x, slope=0.01):\n    return torch.where(x > 0, x, slope * x)\n"
                       "def elu(x, alpha=1.0):\n    return F.elu(x, alpha)", "visible"),  # PyTorch's slope
    ("03_activations", "def leaky_relu(x, slope=0.1):\n    x[x < 0] *= slope\n    return x\n"
                       "def elu(x, alpha=1.0):\n    return F.elu(x, alpha)", "visible"),  # in place
    ("03_softmax", "def softmax(z):\n    return torch.exp(z) / torch.exp(z).sum(dim=-1, keepdim=True)", "visible"),
    ("03_softmax", "def softmax(z):\n    return torch.softmax(z, dim=0)", "visible"),
    ("03_cross_entropy", "def cross_entropy(q, p):\n    return -(p * torch.log(q)).sum(dim=-1)", "visible"),  # nan
    ("03_cross_entropy", "def cross_entropy(q, p):\n    return -torch.xlogy(p, q).sum()", "hidden"),  # sums the batch
    ("03_mlp_backward", "def mlp_backward(x, y, w1, b1, w2, b2):\n"
                        "    from course_utils.basics.networks import mlp_backward as ref\n"
                        "    return tuple(g * len(x) for g in ref(x, y, w1, b1, w2, b2))", "visible"),  # sum, not mean
    ("03_adam", "def adam_update(param, grad, m, v, t, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
                "    m = beta1 * m + (1 - beta1) * grad\n    v = beta2 * v + (1 - beta2) * grad**2\n"
                "    return param - lr * m / (v.sqrt() + eps), m, v", "visible"),  # no bias correction
]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # wrong answers divide by zero, overflow...
@pytest.mark.parametrize("gid,wrong,where", WRONG, ids=[f"{g}-{i}" for i, (g, _, _) in enumerate(WRONG)])
def test_wrong_answers_are_rejected(gid, wrong, where):
    tests = cells(NB[gid[:2]])[f"{gid}_tests"]
    if where == "visible":
        with pytest.raises(CheckError):
            run(wrong, visible(tests))
    else:
        run(wrong, visible(tests))  # the student's checks pass...
        with pytest.raises((CheckError, AssertionError)):
            run(wrong, tests)  # ...but a hidden test does not
