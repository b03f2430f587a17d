"""Safe image loading (modes, EXIF, corrupt files, bombs) and the transforms."""

import numpy as np
import pytest
import torch
from PIL import Image

from course_utils.vision.image_io import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageError,
    denormalize,
    eval_transform,
    load_image,
    train_transform,
)


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    img = Image.new("RGB", (10, 6), (200, 40, 40)).convert(mode)
    ext = "jpg" if mode == "CMYK" else "png"
    out = load_image(_save(img, tmp_path / f"x.{ext}"))
    assert out.mode == "RGB" and out.size == (10, 6)


def test_transparency_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))  # fully transparent black
    out = np.asarray(load_image(_save(img, tmp_path / "t.png")))
    assert (out == 255).all()
    pal = Image.new("P", (4, 4), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert (np.asarray(load_image(_save(pal, tmp_path / "p.png"))) == 255).all()


def test_16_bit_is_rescaled_not_clipped(tmp_path):
    arr = np.array([[0, 32768, 65535]], dtype=np.uint16)
    out = np.asarray(load_image(_save(Image.fromarray(arr), tmp_path / "g16.png")))
    assert out[0, :, 0].tolist() == [0, 128, 255]


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 5, 10))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_save(img, tmp_path / "o.jpg", exif=exif, quality=95))
    assert out.size == (10, 30)
    top = np.asarray(out)[1, 5]
    assert top[0] > 200 and top[2] < 60  # the red strip is now at the top


def test_truncated_and_corrupt_files_name_themselves(tmp_path):
    good = _save(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)),
                 tmp_path / "full.jpg")  # fmt: skip
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:600])
    with pytest.raises(ImageError, match="cut.jpg: truncated or corrupt"):
        load_image(cut)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="notes.jpg: not an image file"):
        load_image(text)
    with pytest.raises(ImageError, match="gone.jpg: no such image file"):
        load_image(tmp_path / "gone.jpg")


def test_decompression_bomb_refused(tmp_path):
    path = _save(Image.new("L", (200, 100)), tmp_path / "big.png")
    with pytest.raises(ImageError, match="big.png: 200x100 = 20,000 pixels, over the limit of 10,000"):
        load_image(path, max_pixels=10_000)
    assert load_image(path).size == (200, 100)


def test_transforms_shapes_and_normalisation():
    img = Image.new("RGB", (50, 30), tuple(int(255 * m) for m in IMAGENET_MEAN))
    x = eval_transform(32)(img)
    assert x.shape == (3, 32, 32) and x.abs().max() < 0.02  # the mean colour normalises to ~0
    torch.manual_seed(0)
    y = train_transform(32)(img)
    assert y.shape == (3, 32, 32)
    white = eval_transform(8)(Image.new("RGB", (8, 8), (255, 255, 255)))
    assert torch.allclose(white[:, 0, 0], (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD), atol=1e-5)
    assert torch.allclose(denormalize(white), torch.ones(3, 8, 8), atol=1e-5)
