"""The caption-data plots of notebook 07 draw the numbers they are given."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from course_utils.plotting import plot_caption_lengths, plot_vocab_curve, show_boxes

COUNTS = {"a": 10, "red": 4, "circle": 3, "blue": 2, "dog": 1, "cat": 1}  # 21 tokens in all


def test_vocab_curve_sizes_and_coverage():
    fig = plot_vocab_curve(COUNTS, thresholds=[1, 2, 3, 5], mark=2)
    ax, ax2 = fig.axes
    sizes = ax.lines[0].get_ydata()
    coverage = ax2.lines[0].get_ydata()
    assert list(sizes) == [6, 4, 3, 1]  # words with count >= 1, 2, 3, 5
    np.testing.assert_allclose(coverage, [100, 19 / 21 * 100, 17 / 21 * 100, 10 / 21 * 100])
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["min_freq=2: 4 words\n90.5% of tokens"]
    assert ax.get_xscale() == "linear"
    plt.close(fig)
    fig = plot_vocab_curve(COUNTS, thresholds=[1, 2, 5, 10, 50, 100])
    assert fig.axes[0].get_xscale() == "log"  # wide ranges of thresholds spread evenly
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "5", "10", "50", "100"]
    plt.close(fig)


def test_vocab_curve_without_mark_in_range():
    fig = plot_vocab_curve(COUNTS, thresholds=[1, 2], mark=7)
    assert len(fig.axes[0].texts) == 0
    plt.close(fig)


def test_caption_lengths_legend_counts_truncation():
    lengths = [5, 6, 6, 7, 12, 20]
    fig = plot_caption_lengths(lengths, max_len=10)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "mean 9.3"
    assert labels[2] == "max_len 10: 2 of 6 truncated"
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == len(lengths) and max(heights) == 2  # one bar per integer length
    plt.close(fig)


def test_caption_lengths_refuses_empty():
    with pytest.raises(ValueError, match="at least one"):
        plot_caption_lengths([])


def test_show_boxes_draws_each_object_with_its_words():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    objects = [{"box": [2, 3, 12, 14], "words": ["circle", "red"]}, {"box": [16, 16, 30, 30], "words": ["star"]}]
    fig = show_boxes(image, objects, title="a red circle above a star")
    ax = fig.axes[0]
    assert len(ax.patches) == 4  # a white and a dashed black rectangle per object
    assert ax.patches[0].get_xy() == (2, 3) and ax.patches[0].get_width() == 10
    assert [t.get_text() for t in ax.texts] == ["circle red", "star"]
    # a box touching the top edge gets its label below it, the other above it
    assert ax.texts[0].get_position() == (2, 15) and ax.texts[0].get_va() == "top"
    assert ax.texts[1].get_position() == (16, 15) and ax.texts[1].get_va() == "bottom"
    assert ax.get_title() == "a red circle above a star"
    plt.close(fig)


def test_show_boxes_wraps_long_titles():
    title = "three shapes: a large yellow star, a small blue cross and a small purple square"
    fig = show_boxes(np.zeros((8, 8, 3), dtype=np.uint8), [], title=title)
    lines = fig.axes[0].get_title().split("\n")
    assert len(lines) > 1 and all(len(line) <= 36 for line in lines)
    assert " ".join(lines) == title
    plt.close(fig)
