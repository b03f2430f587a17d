"""``python -m course_utils caption IMAGE... --checkpoint CKPT [--beam K] [--out DIR]``.

Prints one caption per image (``path: caption``) and saves its attention figure, one
panel per word. Problems get one clear line on stderr and a non-zero exit code:

* an incompatible, corrupt or refused checkpoint: nothing can be captioned, exit 2;
* a missing or unreadable image, or a folder given as an image: that image is skipped,
  the others are still captioned, exit 1.

Each attention figure goes to ``--out`` (default ``runs/captions``) as
``<image name>_attention.png``; images that share a name (``a/cat.jpg`` and ``b/cat.jpg``,
``cat.png`` and ``cat.jpg``) get ``_2``, ``_3``, ... in the order given, so no figure of a
run overwrites another, and each printed line names its figure.

A checkpoint trained on cached features (no encoder inside) names the encoder that made
them in its config (``feature_encoder``, e.g. ``"resnet50"``); that encoder, with its
ImageNet weights, is then put in front of the decoder.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from course_utils.cli.args import device, fail, output_dir, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files to caption")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by the demo or train.fit")
    parser.add_argument("--beam", type=positive_int, default=3, help="beam size (1 = greedy; default 3)")
    parser.add_argument("--max-len", type=positive_int, default=20, help="longest caption, in tokens (default 20)")
    parser.add_argument("--out", type=output_dir, default=Path("runs/captions"),
                        help="folder for the attention figures, one per image, named IMAGE_attention.png "
                             "(_2, _3, ... when two images share a name); default runs/captions")
    parser.add_argument("--device", type=device, default=None, help="force a device, e.g. cpu")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="images decoded at once (default 32)")


def figure_names(images: list[str]) -> list[str]:
    """``IMAGE_attention.png`` per image, numbered ``_2``, ``_3``, ... where names repeat (never overwritten)."""
    used: set[str] = set()
    names = []
    for image in images:
        stem, n = Path(image).stem, 1
        name = f"{stem}_attention.png"
        while name in used:
            n += 1
            name = f"{stem}_attention_{n}.png"
        used.add(name)
        names.append(name)
    return names


def load_captioner(path: str, device: torch.device) -> tuple[Any, Any, dict]:
    """Model (eval mode), vocabulary and config from a checkpoint; ``CheckpointError`` if unusable."""
    from course_utils.captioning.captioner import build_captioner
    from course_utils.captioning.checkpoint import CheckpointError, load_checkpoint
    from course_utils.captioning.encoders import PretrainedEncoder
    from course_utils.sequence.vocab import Vocabulary

    ckpt = load_checkpoint(path, map_location="cpu")
    config = dict(ckpt["config"])
    try:
        vocab = Vocabulary(ckpt.get("vocab") or [])
    except ValueError as err:
        raise CheckpointError(f"{path}: its vocabulary is unusable ({err})") from None
    if config.get("vocab_size") != len(vocab):
        raise CheckpointError(f"{path}: config says {config.get('vocab_size')} words, vocabulary has {len(vocab)}")
    config["encoder_weights"] = None  # the checkpoint holds the trained weights
    try:
        model = build_captioner(config)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: incompatible checkpoint ({str(err).splitlines()[0]})") from None
    if model.encoder is None:
        if not config.get("feature_encoder"):
            raise CheckpointError(f"{path}: trained on cached features and names no 'feature_encoder' to make them")
        model.encoder = PretrainedEncoder(config["feature_encoder"], grid=config.get("grid", 7))
    return model.to(device).eval(), vocab, config


def load_images(names: list[str]) -> tuple[list[tuple[str, Any]], int]:
    """The readable images as ``(name, PIL image)``; each unreadable one is named in one ``error:`` line."""
    from course_utils.vision.image_io import ImageError, load_image

    loaded, failures = [], 0
    for name in names:
        try:
            if Path(name).is_dir():
                raise ImageError(f"{name}: a folder, not an image file (give the images, e.g. {name}/*.jpg)")
            loaded.append((name, load_image(name)))
        except ImageError as err:
            fail(str(err))
            failures += 1
    return loaded, failures


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from course_utils.captioning.checkpoint import CheckpointError
    from course_utils.captioning.inference import caption_images
    from course_utils.env import pick_device
    from course_utils.plotting import plot_attention

    device = pick_device(args.device)
    try:
        model, vocab, config = load_captioner(args.checkpoint, device)
    except CheckpointError as err:
        return fail(str(err))
    if config.get("trained_on"):
        print(f"model: trained on {config['trained_on']}")
    loaded, failures = load_images(args.images)
    captions = caption_images(model, vocab, [img for _, img in loaded], beam_size=args.beam, max_len=args.max_len,
                              batch_size=args.batch_size)  # fmt: skip
    figures = figure_names([name for name, _ in loaded])
    for (name, img), cap, figure_name in zip(loaded, captions, figures):
        line = " ".join(cap.words)
        if cap.alphas is not None:
            fig = plot_attention(img, cap.words, cap.alphas, config.get("grid", 7), title=line)
            figure = args.out / figure_name
            try:
                args.out.mkdir(parents=True, exist_ok=True)
                fig.savefig(figure, dpi=80)
            except OSError as err:  # e.g. a read-only folder: nothing more can be saved
                return fail(f"{args.out}: cannot write the figure {figure_name} ({err.strerror or err})")
            finally:
                plt.close(fig)
            line += f"   [{figure}]"
        print(f"{name}: {line}")
    return 1 if failures else 0
