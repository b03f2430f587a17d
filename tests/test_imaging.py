"""Images as arrays: sample photos, grey conversion, BMP arithmetic, compression, histograms."""

import io

import numpy as np
import pytest
from PIL import Image

from course_utils.basics import arrays


@pytest.mark.parametrize("name", list(arrays.SAMPLES))
def test_every_sample_photo_loads_offline(name, capsys):
    image = arrays.load_sample(name)
    kind = arrays.SAMPLES[name][2]
    assert capsys.readouterr().out == "", f"{name} fell back to the generated image"
    if kind == "rgb":
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8
    elif kind == "grey":
        assert image.ndim == 2 and image.dtype == np.uint8
    else:
        assert image.ndim == 2 and image.dtype == bool
    assert min(image.shape[:2]) >= 100


@pytest.mark.parametrize("name,kind", [("astronaut", "rgb"), ("camera", "grey"), ("horse", "binary")])
def test_missing_sample_falls_back_with_one_line(monkeypatch, capsys, name, kind):
    def broken(_what):
        raise OSError("file not found")

    monkeypatch.setattr(arrays, "_load_skimage", broken)
    image = arrays.load_sample(name)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and name in out[0] and "OSError" in out[0] and "generated" in out[0]
    expected = arrays.synthetic_photo(kind)
    assert image.shape == expected.shape and image.dtype == expected.dtype


def test_unknown_sample_names_the_choices():
    with pytest.raises(ValueError, match="astronaut"):
        arrays.load_sample("no_such_photo")


def test_synthetic_photo_kinds():
    assert arrays.synthetic_photo("rgb", (40, 50)).shape == (40, 50, 3)
    assert arrays.synthetic_photo("grey", (40, 50)).dtype == np.uint8
    binary = arrays.synthetic_photo("binary", (40, 50))
    assert binary.dtype == bool and 0 < binary.mean() < 1
    with pytest.raises(ValueError, match="kind"):
        arrays.synthetic_photo("cmyk")


def test_to_grey_matches_pil_within_rounding():
    rgb = arrays.load_sample("astronaut")
    pil = np.asarray(Image.fromarray(rgb).convert("L")).astype(float)
    ours = arrays.to_grey(rgb)
    assert ours.shape == rgb.shape[:2] and ours.dtype == np.float64
    assert np.abs(ours - pil).max() <= 1.0


def test_to_grey_bt709_matches_skimage():
    from skimage.color import rgb2gray

    rgb = arrays.load_sample("coffee")
    np.testing.assert_allclose(arrays.to_grey(rgb, arrays.BT709) / 255, rgb2gray(rgb), atol=1e-6)


def test_to_grey_keeps_white_white_and_rejects_grey_input():
    white = np.full((2, 3, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(arrays.to_grey(white), 255)
    np.testing.assert_allclose(arrays.to_grey(white, arrays.MEAN), 255)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        arrays.to_grey(np.zeros((4, 4), dtype=np.uint8))


def test_channels():
    rgb = arrays.load_sample("chelsea")
    red, green, blue = arrays.split_channels(rgb)
    assert red.shape == rgb.shape[:2] and np.array_equal(blue, rgb[:, :, 2])
    only_green = arrays.isolate_channel(rgb, 1)
    assert np.array_equal(only_green[:, :, 1], green) and only_green[:, :, [0, 2]].max() == 0


def test_binarize_otsu_and_fixed_threshold():
    grey = arrays.load_sample("coins")
    mask = arrays.binarize(grey)
    assert mask.dtype == bool and 0.1 < mask.mean() < 0.9
    assert np.array_equal(arrays.binarize(grey, 100), grey > 100)
    with pytest.raises(ValueError, match="grey"):
        arrays.binarize(np.zeros((3, 3, 3)))


def test_bmp_seed_example():
    assert arrays.bmp_size(800, 600) == 800 * 600 * 3 + 54 == 1_440_054


@pytest.mark.parametrize(
    "width,height,mode,bits",
    [
        (800, 600, "RGB", 24),
        (801, 600, "RGB", 24),
        (3, 2, "RGB", 24),
        (1, 1, "RGB", 24),
        (800, 600, "L", 8),
        (7, 5, "L", 8),
        (800, 600, "1", 1),
        (13, 3, "1", 1),
    ],
)
def test_bmp_size_matches_files_pil_writes(width, height, mode, bits):
    buffer = io.BytesIO()
    Image.new(mode, (width, height)).save(buffer, format="BMP")
    assert arrays.bmp_size(width, height, bits) == len(buffer.getvalue())


def test_bmp_size_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        arrays.bmp_size(0, 10)
    with pytest.raises(ValueError, match="bits_per_pixel"):
        arrays.bmp_size(10, 10, 12)


def test_save_image_is_atomic_and_reports_the_size(tmp_path):
    rgb = arrays.synthetic_photo("rgb", (60, 81))
    path = tmp_path / "sub" / "photo.bmp"
    size = arrays.save_image(rgb, path)
    assert size == path.stat().st_size == arrays.bmp_size(81, 60)
    assert [p.name for p in path.parent.iterdir()] == ["photo.bmp"]  # no temporary file left
    assert np.array_equal(np.asarray(Image.open(path)), rgb)
    assert arrays.save_image(rgb, tmp_path / "photo.jpg", quality=50) < size
    with pytest.raises(ValueError, match="quality"):
        arrays.save_image(rgb, tmp_path / "photo.jpg")


def test_psnr_matches_skimage():
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert arrays.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=255))
    assert arrays.psnr(a, a) == float("inf")
    with pytest.raises(ValueError, match="shape"):
        arrays.psnr(a, a[:10])


def test_compression_table_measures_size_and_error():
    photo = arrays.load_sample("astronaut")
    rows = arrays.compression_table(photo, jpeg_qualities=(90, 50, 10))
    by = {(r["format"], r["quality"]): r for r in rows}
    assert by[("BMP", None)]["bytes"] == arrays.bmp_size(512, 512) and by[("BMP", None)]["ratio"] == 1
    assert by[("PNG", None)]["psnr"] == float("inf") and by[("PNG", None)]["max_error"] == 0
    jpeg = [by[("JPEG", q)] for q in (90, 50, 10)]
    assert jpeg[0]["bytes"] > jpeg[1]["bytes"] > jpeg[2]["bytes"]
    assert jpeg[0]["psnr"] > jpeg[1]["psnr"] > jpeg[2]["psnr"] > 20
    assert by[("GIF", None)]["max_error"] > 0  # a photo has more than 256 colours: GIF must quantise
    grey = arrays.compression_table(arrays.load_sample("camera"), jpeg_qualities=(50,))
    assert [r["format"] for r in grey] == ["BMP", "PNG", "GIF", "JPEG"]
    assert grey[2]["max_error"] == 0  # 256 grey levels fit GIF's palette


def test_histogram_counts_every_pixel():
    grey = arrays.load_sample("camera")
    counts = arrays.histogram(grey)
    assert counts.shape == (256,) and counts.sum() == grey.size
    np.testing.assert_array_equal(counts, np.histogram(grey, bins=256, range=(0, 256))[0])
    with pytest.raises(ValueError, match="uint8"):
        arrays.histogram(grey.astype(float))


def test_contrast_changes_the_spread_of_the_histogram():
    grey = arrays.load_sample("camera")
    std = arrays.contrast_stats(grey)["std"]
    assert arrays.contrast_stats(arrays.adjust_contrast(grey, 0.5))["std"] < std
    assert arrays.contrast_stats(arrays.adjust_contrast(grey, 1.5))["std"] > std
    assert np.array_equal(arrays.adjust_contrast(grey, 1.0), grey)


def test_stretch_and_equalize_widen_a_low_contrast_photo():
    moon = arrays.load_sample("moon")
    before = arrays.contrast_stats(moon)
    for fixed in (arrays.stretch_contrast(moon), arrays.equalize(moon)):
        after = arrays.contrast_stats(fixed)
        assert fixed.dtype == np.uint8 and fixed.shape == moon.shape
        assert after["std"] > 2 * before["std"]
        assert after["p98"] - after["p2"] > 3 * (before["p98"] - before["p2"])
        assert after["levels_used"] <= before["levels_used"]  # a level maps to one level: none are created


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 5), (4, 4), (37, 50), (600, 800)])
def test_bmp_bytes_is_what_pil_writes(shape):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="BMP")
    assert arrays.bmp_bytes(image) == buffer.getvalue()
    assert len(arrays.bmp_bytes(image)) == arrays.bmp_size(shape[1], shape[0])
    arrays.check_bmp_bytes(arrays.bmp_bytes, image)


def test_check_bmp_bytes_names_the_mistake():
    from course_utils.checks import CheckError

    image = np.random.default_rng(1).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    cases = {"bottom row first": lambda rgb: arrays.bmp_bytes(rgb[::-1]),
             "blue, green, red": lambda rgb: arrays.bmp_bytes(rgb[:, :, ::-1]),
             "multiple of 4": lambda rgb: arrays.bmp_bytes(rgb)[:-3],
             "file size": lambda rgb: arrays.bmp_bytes(rgb)[:2] + b"\0" + arrays.bmp_bytes(rgb)[3:],
             "expected bytes": lambda rgb: list(arrays.bmp_bytes(rgb))}  # fmt: skip
    for hint, writer in cases.items():
        with pytest.raises(CheckError, match=hint):
            arrays.check_bmp_bytes(writer, image)
