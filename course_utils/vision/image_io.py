"""Safe image loading and the transforms of the captioning chapters.

``load_image(path)`` always returns an RGB ``PIL.Image`` or raises ``ImageError`` naming
the file:

* EXIF orientation is applied (phone photos are often stored sideways);
* every mode becomes RGB: grey ``L``, ``LA``/``RGBA``/``P`` with transparency (composited
  on white, not on whatever colour hides under the alpha), ``CMYK``, 16-bit ``I;16``/``I``
  and float ``F`` (rescaled to 0-255, not clipped);
* a truncated or corrupt file is an error, never a half-grey image;
* a decompression bomb (more than ``MAX_PIXELS`` pixels) is refused before decoding.

The transforms use torchvision and ImageNet normalisation, because the pretrained
encoders were trained on images normalised that way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 89_478_485  # Pillow's own default limit (about 9,500 x 9,500)


class ImageError(ValueError):
    """An image file that cannot be used; the message names it."""


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB (alpha composited on white, 16-bit and float rescaled to 8 bits)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F" and arr.max() <= 1.0:
            top = 1.0  # float images are usually in [0, 1]
        grey = np.clip(arr / top * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")  # the palette may hold a transparent colour
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(path: Union[str, Path], max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an RGB image with its EXIF orientation applied; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(f"{path}: {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
                                 "(decompression bomb?)")  # fmt: skip
            img.load()  # decode now, so a truncated file fails here and not later
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except Image.DecompressionBombError as err:
        raise ImageError(f"{path}: refused as a decompression bomb ({err})") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageError(f"{path}: truncated or corrupt image ({err})") from None


def normalize() -> T.Normalize:
    return T.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def eval_transform(size: int = 224) -> T.Compose:
    """PIL image -> tensor ``(3, size, size)``, ImageNet-normalised.

    A square resize, not resize + centre crop: a crop could cut off the object a caption
    names, and a plain resize keeps ground-truth boxes valid after scaling.
    """
    return T.Compose([T.Resize((size, size), antialias=True), T.ToTensor(), normalize()])


def classify_transform(size: int = 224) -> T.Compose:
    """PIL image -> tensor ``(3, size, size)``, ImageNet-normalised: how ImageNet classifiers are evaluated.

    The shorter side is resized to ``size * 256 / 224`` pixels (256 for 224) and the centre
    ``size x size`` square is kept, so the photo is not stretched; the classifiers of
    ``course_utils.vision.pretrained`` were trained and scored on such crops.
    """
    return T.Compose([T.Resize(round(size * 256 / 224), antialias=True), T.CenterCrop(size), T.ToTensor(),
                      normalize()])  # fmt: skip


def train_transform(size: int = 224) -> T.Compose:
    """``eval_transform`` plus augmentation: a small random shift-and-crop and mild colour jitter.

    No horizontal flip and no hue change: flipping turns "left of" into "right of" and a
    hue shift turns a red circle green, so both would contradict the captions.
    """
    pad = max(1, size // 8)
    return T.Compose(
        [
            T.Resize((size + pad, size + pad), antialias=True),
            T.RandomCrop(size),
            T.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.1),
            T.ToTensor(),
            normalize(),
        ]
    )


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo ImageNet normalisation for display: ``(..., 3, H, W)`` -> same shape, values in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0, 1)
