"""``python -m course_utils demo``: the main job, end to end, offline, on a CPU in minutes.

1. generate the embedded synthetic dataset (coloured shapes, 5 captions per image,
   ground-truth boxes) if it is not there yet;
2. build the vocabulary from the training captions;
3. run a frozen ImageNet-pretrained CNN once over every image into a ``FeatureCache``
   (the design of the lab report *TP2 Attention*, the same path as notebooks 08-10 and as a real dataset);
4. train the Show-Attend-and-Tell decoder on the cached grids with the kit's training loop;
5. evaluate on the held-out test split with greedy decoding and beam search: BLEU-1..4,
   ROUGE-L, CIDEr (METEOR when Java is present and the captions are English) and the
   attention localisation score (how often the attention peak for an object word falls
   on that object);
6. save the checkpoint, the vocabulary, the loss curves, attention figures (one panel
   per word) and the scores (JSON) to ``--out``.

The encoder is EfficientNet-Lite0 with the ImageNet weights a pip package installs: it
is there offline and cheap on a CPU. It is cut after its fifth stage (``blocks.4``, 112
channels) and fed 112-px images, which gives a 7 x 7 grid. Why not its last feature map
(7 x 7 x 1280 at 224 px), as a classifier would use: measured with the same decoder and
training, the attention then finds the object a word names far less often (localisation
0.51 against 0.73 with beam 3, BLEU-4 61.9 against 64.5), because after the last stages
every region vector describes much of the image around it, so the regions look alike to the
attention; the earlier stage keeps each vector about its own part of the image (details in
the README). It is also several times cheaper to run. The checkpoint names the encoder
(``feature_encoder``), so ``python -m course_utils caption`` and the caption app put it back
in front of the decoder to caption new images.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from course_utils.cli.args import device, int_at_least, non_negative_int, output_dir, positive_int
from course_utils.cli.cpu import choose_threads, speed_up_cpu
from course_utils.files import write_atomic

# Default settings, chosen to finish within 2.5 minutes on 2 idle CPU cores (see the README).
IMAGES = 2000  # synthetic images: 80 % train, 10 % val, 10 % test
IMAGE_SIZE = 96  # pixels, as generated
NETWORK = "efficientnet_lite0:blocks.4"  # the frozen ImageNet encoder, cut after its 5th stage (see above)
FEATURE_SIZE = 112  # pixels the encoder sees: blocks.4 divides them by 16, a 7 x 7 grid
GRID = 7  # the encoder's grid: 7 x 7 = 49 regions
EPOCHS = 6


def model_config(vocab_size: int, encoder: Any, lang: str) -> dict[str, Any]:
    """The captioner of the demo, as a ``build_captioner`` config (stored in the checkpoint).

    It reads cached features; ``feature_encoder``/``grid``/``image_size`` name the frozen
    encoder that made them, so the caption command can rebuild it for new images.
    """
    from course_utils.captioning.prepare import trained_on

    return {
        "decoder": "attention",
        "vocab_size": vocab_size,
        "encoder": None,
        "encoder_dim": encoder.encoder_dim,
        "feature_encoder": encoder.name,
        "grid": encoder.grid,
        "image_size": FEATURE_SIZE,
        "embed_dim": 64,
        "hidden_dim": 256,
        "attention_dim": 128,
        "dropout": 0.1,
        "trained_on": trained_on(f"synth_{lang}", synthetic=True),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=output_dir, default="runs/demo",
                        help="folder for the checkpoint, figures and scores")
    parser.add_argument("--lang", choices=["en", "fr"], default="en", help="caption language")
    parser.add_argument("--epochs", type=positive_int, default=EPOCHS, help=f"training epochs (default {EPOCHS})")
    parser.add_argument("--images", type=int_at_least(10), default=IMAGES,
                        help=f"synthetic images, at least 10 (default {IMAGES})")
    parser.add_argument("--beam", type=positive_int, default=3, help="beam size of the beam-search evaluation")
    parser.add_argument("--data", default=None, help="dataset folder (default: DATA_ROOT/synth_LANG_N)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--device", type=device, default=None, help="force a device, e.g. cpu")
    parser.add_argument("--meteor", choices=["auto", "yes", "no"], default="auto",
                        help="METEOR needs Java and takes ~15 s to start (auto: when Java is present)")  # fmt: skip
    parser.add_argument("--figures", type=non_negative_int, default=4, help="attention figures to save")
    parser.add_argument("--threads", type=non_negative_int, default=0,
                        help="CPU threads for torch (0 = auto: all cores, or 1 when other programs keep them busy)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def prepare(args: argparse.Namespace, data_root: Path) -> tuple[Any, Any, Any, dict, Path]:
    """Dataset on disk, its ``CaptionData``, the vocabulary, the frozen encoder and its feature caches per split."""
    from course_utils.caption_data.formats import load_dataset
    from course_utils.caption_data.synth import generate
    from course_utils.captioning.encoders import build_encoder
    from course_utils.captioning.prepare import build_caches
    from course_utils.sequence.text import tokenize
    from course_utils.sequence.vocab import Vocabulary

    folder = Path(args.data) if args.data else data_root / f"synth_{args.lang}_{args.images}_s{args.seed}"
    generate(folder, n_images=args.images, lang=args.lang, seed=args.seed, image_size=IMAGE_SIZE)
    data = load_dataset(folder)
    train_tokens = [tokenize(c) for k in data.images("train") for c in data.captions[k]]
    vocab = Vocabulary.build(train_tokens, min_freq=2)
    encoder = build_encoder(NETWORK, grid=GRID)  # frozen; prints which network and weights
    start = time.time()
    caches = build_caches(data_root / "cache", data, encoder, FEATURE_SIZE, progress=not args.quiet)
    print(f"features: {encoder.grid} x {encoder.grid} x {encoder.encoder_dim} per image, {time.time() - start:.0f} s")
    return data, vocab, encoder, caches, folder


def save_figures(out: Path, results: list, data: Any, grid: int, n: int) -> list[Path]:
    """Attention overlays of the first ``n`` test images, one panel per word."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from course_utils.plotting import plot_attention
    from course_utils.vision.image_io import load_image

    paths = []
    for r in results[:n]:
        fig = plot_attention(load_image(data.image_path(r.image)), r.words, r.alphas, grid,
                             title=f"{r.image}: {' '.join(r.words)}")  # fmt: skip
        path = out / f"attention_{Path(r.image).stem}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def localisation(results: list, boxes: dict, grid: int) -> dict[str, float]:
    from course_utils.captioning.metrics import attention_localisation

    return attention_localisation([r.words for r in results], [r.alphas for r in results],
                                  [boxes[r.image] for r in results], [(IMAGE_SIZE, IMAGE_SIZE)] * len(results),
                                  grid)  # fmt: skip


def train_captioner(args: argparse.Namespace, data: Any, vocab: Any, encoder: Any, caches: dict,
                    out: Path) -> tuple[Any, dict]:  # fmt: skip
    """Build the demo's captioner (a decoder on cached features) and train it; returns the model and its history."""
    from course_utils.caption_data.datasets import CaptionDataset, EvalDataset
    from course_utils.captioning.captioner import build_captioner
    from course_utils.captioning.train import GroupedCaptions, TrainConfig, fit
    from course_utils.plotting import plot_curves

    train_set = GroupedCaptions(CaptionDataset(data, "train", vocab, features=caches["train"]))
    val_set = GroupedCaptions(CaptionDataset(data, "val", vocab, features=caches["val"]))
    val_eval = EvalDataset(data, "val", features=caches["val"])
    config = model_config(len(vocab), encoder, args.lang)
    model = build_captioner(config)
    print(f"model: Show-Attend-Tell decoder on the frozen {encoder.name} grid ({encoder.grid}x{encoder.grid}), "
          f"{sum(p.numel() for p in model.parameters()):,} trained parameters")  # fmt: skip
    # alpha_c=0: no doubly stochastic penalty. Measured over 3 seeds (README): with 49 regions and captions
    # of ~8 words, asking every region for a total weight of 1 spreads each word's attention, and both the
    # localisation (0.81 -> 0.77 at alpha_c=1) and BLEU-4 (69.9 -> 65.9) drop.
    cfg = TrainConfig(epochs=args.epochs, batch_size=16, lr=3e-3, scheduler="cosine", alpha_c=0.0, grad_clip=5.0,
                      bleu_images=100, samples=1, seed=args.seed, device=args.device,
                      checkpoint=str(out / "captioner.pt"), progress=not args.quiet)  # fmt: skip
    history = fit(model, train_set, val_set, vocab, cfg, eval_set=val_eval, model_config=config)
    if int(os.environ.get("RANK", 0)) == 0:  # under torchrun, rank 0 alone writes (its history has the BLEU scores)
        fig = plot_curves(history, keys=["train_loss", "val_loss", "val_bleu4"], title="attention captioner")
        fig.savefig(out / "curves.png", dpi=80)
    return model, history


def evaluate_test(args: argparse.Namespace, model: Any, data: Any, vocab: Any, caches: dict, folder: Path,
                  out: Path) -> tuple[list[str], dict]:  # fmt: skip
    """Greedy and beam-search scores on the test split: the printed lines and the JSON report."""
    from course_utils.caption_data.datasets import EvalDataset
    from course_utils.caption_data.synth import load_boxes
    from course_utils.captioning.metrics import java_available
    from course_utils.captioning.train import evaluate

    test_eval = EvalDataset(data, "test", features=caches["test"])
    meteor = {"auto": None, "yes": True, "no": False}[args.meteor] if args.lang == "en" else False
    boxes = load_boxes(folder)
    lines, report = [], {"test_images": len(test_eval)}
    for beam in sorted({1, args.beam}):
        scores, results = evaluate(model, test_eval, vocab, beam_size=beam, meteor=meteor)
        scores.update(localisation(results, boxes, GRID))
        method = "greedy" if beam == 1 else "beam search"
        report[f"beam{beam}"] = {"method": method, **scores}
        lines.append(f"decoding: {method}, beam size {beam}, {len(results)} test images")
        lines += [f"{key}: {scores[key]:.1f}" for key in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l",
                                                            "cider") if key in scores]  # fmt: skip
        lines.append(f"protocol: {scores['protocol']}")
        lines.append(f"attention_localisation: {scores['attention_localisation']:.2f}")
        lines.append(f"attention_localisation_chance: {scores['chance']:.2f}")
        if beam == max(1, args.beam):  # figures and samples from the best decoding
            report["figures"] = [str(p) for p in save_figures(out, results, data, GRID, args.figures)]
            report["samples"] = [{"image": r.image, "caption": " ".join(r.words),
                                  "references": [" ".join(x) for x in r.references]} for r in results[:20]]  # fmt: skip
    if args.lang != "en":
        lines.append("meteor: skipped (pycocoevalcap's METEOR jar has English paraphrase tables only)")
    elif meteor is None and not java_available():
        lines.append("meteor: skipped (no java on PATH)")
    return lines, report


def write_json(path: Path, obj: Any) -> None:
    """JSON written atomically (temporary file, then ``os.replace``)."""
    write_atomic(path, json.dumps(obj, indent=1, default=float))


def run(args: argparse.Namespace) -> int:
    from course_utils.captioning.distributed import placement

    with placement(args.device) as place:  # under torchrun: the process group, joined once for the whole run
        return run_on(args, place)


def run_on(args: argparse.Namespace, place: Any) -> int:
    """The demo in one process (``place``: its rank; under torchrun every rank runs this)."""
    from course_utils.captioning.distributed import rank_zero_first
    from course_utils.env import get_env, seed_everything

    start = time.time()
    env = get_env(seed=args.seed, device=args.device)
    seed_everything(args.seed)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {env.device.type}" + (f", threads: {choose_threads(args.threads)}" if env.device.type == "cpu"
                                          else ""))  # fmt: skip
    if env.device.type == "cpu":
        speed_up_cpu()  # the command's choice for this process: see course_utils.cli.cpu
    out = Path(args.out)
    with rank_zero_first(place):  # rank 0 generates the data and builds the caches; the others then reuse them
        data, vocab, encoder, caches, folder = prepare(args, env.data_root)
    if place.is_main:
        out.mkdir(parents=True, exist_ok=True)
        vocab.save(out / "vocab.json")
    sizes = ", ".join(f"{len(data.images(s))} {s}" for s in ("train", "val", "test"))
    print(f"data: {folder} ({len(data.captions)} images: {sizes}; vocabulary {len(vocab)} words)")
    model, history = train_captioner(args, data, vocab, encoder, caches, out)
    if not place.is_main:  # under torchrun, rank 0 alone evaluates and writes the scores
        return 0
    lines, report = evaluate_test(args, model, data, vocab, caches, folder, out)
    seconds = time.time() - start
    report.update(dataset=str(folder), lang=args.lang, epochs_trained=len(history["train_loss"]), history=history,
                  seconds=seconds, cpu_seconds=time.process_time(), load_average_at_start=load)  # fmt: skip
    write_json(out / "scores.json", report)
    print("\n".join(lines))
    print(f"seconds: {seconds:.0f}")
    print(f"saved: {out / 'captioner.pt'}, {out / 'curves.png'}, {len(report['figures'])} attention figures, "
          f"{out / 'scores.json'}")  # fmt: skip
    return 0
