"""The filter explorer of notebook 02: built headless, sliders moved by code, output checked."""

import io

import numpy as np
import pytest
from PIL import Image

from course_utils.apps.filter_explorer import filter_explorer
from course_utils.basics.arrays import load_sample


def shown(app):
    return np.asarray(Image.open(io.BytesIO(app.view.value)))


@pytest.fixture
def app():
    return filter_explorer(load_sample("camera")[::4, ::4], max_size=7, max_noise=0.3)


def test_initial_view_shows_clean_noisy_and_filtered(app):
    image = shown(app)
    assert image.shape == (128, 3 * 128 + 8)
    assert np.array_equal(image[:, :128], load_sample("camera")[::4, ::4])
    assert "median 3x3" in app.info.value and "PSNR" in app.info.value


def test_moving_the_sliders_updates_the_view_and_the_numbers(app):
    before_image, before_text = shown(app), app.info.value
    app.controls["size"].value = 5
    assert "median 5x5" in app.info.value
    assert not np.array_equal(shown(app)[:, -128:], before_image[:, -128:])  # the filtered panel changed
    app.controls["noise"].value = 0.2
    assert "20%" in app.info.value and app.info.value != before_text
    noisy = shown(app)[:, 132:260]
    assert 0.15 < np.mean((noisy == 0) | (noisy == 255)) < 0.3
    app.controls["kind"].value = "mean"
    assert "mean 5x5" in app.info.value


def test_median_recovers_more_than_the_noisy_image(app):
    app.controls["noise"].value = 0.1
    noisy_db, filtered_db = [
        float(s.split(" dB")[0]) for s in app.info.value.split("PSNR noisy: ")[1].split("filtered: ")
    ]
    assert filtered_db > noisy_db + 3


def test_rejects_colour_images():
    with pytest.raises(ValueError, match="grey uint8"):
        filter_explorer(load_sample("astronaut"))
