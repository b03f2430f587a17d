"""``python -m course_utils predict IMAGE...``: the upload-and-predict app of notebook 05 on the command line.

For each image: its top-5 ImageNet classes with their confidence, one per line
(``espresso: 0.90``), and a PNG of the photo beside its class-activation map for the top
class, saved to ``--out``. The network is ImageNet-pretrained (``--network``'s torchvision
weights when they can be had, else the bundled EfficientNet-Lite0; one line says which).

Exit codes: 0 all images done; 1 some image could not be read (one ``error:`` line each,
the others are still done); 2 the network cannot be built (one ``error:`` line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    parser.add_argument("--network", default="resnet50",
                        help="ImageNet network: resnet50, mobilenet_v2, efficientnet_lite0, ... (default resnet50; "
                             "offline: efficientnet_lite0)")  # fmt: skip
    parser.add_argument("--top", type=int, default=5, help="classes printed per image (default 5)")
    parser.add_argument("--out", default="runs/predict", help="folder for the class-activation maps")


def run(args: argparse.Namespace) -> int:
    from course_utils.apps.predict_app import (
        imagenet_classifier,
        keep_aspect_transform,
        predict_image,
        side_by_side_png,
    )
    from course_utils.files import write_atomic
    from course_utils.vision.image_io import ImageError, load_image
    from course_utils.vision.pretrained import WeightsUnavailable

    try:
        model = imagenet_classifier(args.network)
    except (ValueError, WeightsUnavailable, FileNotFoundError) as err:
        print(f"error: --network {args.network}: {err}", file=sys.stderr)
        return 2
    transform, out, failures = keep_aspect_transform(), Path(args.out), 0
    for name in args.images:
        try:
            image = load_image(name)
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
            continue
        result = predict_image(model, image, transform, model.class_names, k=max(1, args.top))
        print(f"image: {name}")
        for label, p in result["top"]:
            print(f"{label}: {p:.2f}")
        out.mkdir(parents=True, exist_ok=True)
        figure = out / f"{Path(name).stem}_cam.png"
        write_atomic(figure, side_by_side_png(image, result["cam"], result["top"][0][0]))
        print(f"saved: {figure}")
    return 1 if failures else 0
