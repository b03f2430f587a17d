"""``python -m course_utils caption IMAGE... --checkpoint CKPT [--beam K] [--out DIR]``.

Prints one caption per image (``path: caption``) and saves its attention figure, one
panel per word. Problems get one clear line on stderr and a non-zero exit code:

* an incompatible, corrupt or refused checkpoint: nothing can be captioned, exit 2;
* a missing or unreadable image: that image is skipped, the others are still
  captioned, exit 1.

A checkpoint trained on cached features (no encoder inside) names the encoder that made
them in its config (``feature_encoder``, e.g. ``"resnet50"``); that encoder, with its
ImageNet weights, is then put in front of the decoder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files to caption")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by the demo or train.fit")
    parser.add_argument("--beam", type=int, default=3, help="beam size (1 = greedy)")
    parser.add_argument("--max-len", type=int, default=20, help="longest caption, in tokens")
    parser.add_argument("--out", default="runs/captions", help="folder for the attention figures")
    parser.add_argument("--device", default=None, help="force a device, e.g. cpu")
    parser.add_argument("--batch-size", type=int, default=32)


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


def caption_images(model: Any, vocab: Any, images: list[torch.Tensor], beam: int, max_len: int,
                   batch_size: int, device: torch.device) -> list:  # fmt: skip
    """Captions of ``images`` (each ``(3, H, W)``), decoded ``batch_size`` at a time."""
    from course_utils.captioning.decoding import decode

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            features = model.encode(torch.stack(images[i : i + batch_size]).to(device))
            out += decode(model.decoder, features, vocab.start_id, vocab.end_id, beam, max_len)
    return out


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from course_utils.captioning.checkpoint import CheckpointError
    from course_utils.env import pick_device
    from course_utils.plotting import plot_attention
    from course_utils.vision.image_io import ImageError, eval_transform, load_image

    device = pick_device(args.device)
    try:
        model, vocab, config = load_captioner(args.checkpoint, device)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if config.get("trained_on"):
        print(f"model: trained on {config['trained_on']}")
    transform = eval_transform(config.get("image_size", 224))
    loaded, failures = [], 0
    for name in args.images:
        try:
            loaded.append((name, load_image(name)))
        except ImageError as err:
            print(f"error: {err}", file=sys.stderr)
            failures += 1
    out = Path(args.out)
    captions = caption_images(model, vocab, [transform(img) for _, img in loaded], args.beam, args.max_len,
                              args.batch_size, device)  # fmt: skip
    for (name, img), cap in zip(loaded, captions):
        words = [vocab.itos[i] for i in cap.ids]
        line = " ".join(words)
        if cap.alphas is not None:
            out.mkdir(parents=True, exist_ok=True)
            fig = plot_attention(img, words, cap.alphas, config.get("grid", 7), title=line)
            figure = out / f"{Path(name).stem}_attention.png"
            fig.savefig(figure, dpi=80)
            plt.close(fig)
            line += f"   [{figure}]"
        print(f"{name}: {line}")
    return 1 if failures else 0
