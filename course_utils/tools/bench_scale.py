"""``bench --scale``: each stage of the real-data path timed at 1,000 to 8,091 images (Flickr8k's size).

The path is the one chapters 07-10 run on a real dataset: load ``captions.txt`` and build
the vocabulary (words seen twice in the training captions), run a frozen ResNet-50 once
over every image into the ``FeatureCache`` (224 px, 7 x 7 x 2,048 float16), train the
attention decoder for one epoch on the cached features (embedding, LSTM and attention
512, as in Show, Attend and Tell), then caption the test split greedily and with beam
search 3. Each scale runs in a fresh process on the first ``n`` images of the stand-in
dataset of ``bench_flickr`` (so its peak memory is its own), and prints one line per
figure: ``scale_feature_cache_images_per_s_2000: 17.9``.

Beside the feature cache, the two halves it overlaps are timed alone on a sample of the
same images: JPEG decoding (the same ``DataLoader`` workers, no encoder) and the encoder
(on a batch already in memory); ``scale_feature_cache_overlap_N`` is the cache's
throughput over the slower of the two (1.0 = perfect overlap).

ResNet-50 runs with random weights (offline): the arithmetic is the same as with ImageNet's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

SCALES, QUICK_SCALES = (1000, 2000, 4000, 8091), (1000, 2000)
DECODER_512 = {"embed_dim": 512, "hidden_dim": 512, "attention_dim": 512, "dropout": 0.5}
SAMPLE = 128  # images decoded, and encoded, alone to time each half of the cache's work
SPLITS = ("train", "val", "test")


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _halves(data: Any, encoder: torch.nn.Module, device: torch.device) -> dict[str, float]:
    """Images/s of decoding alone (the cache's loader, no encoder) and of the encoder alone (images in memory)."""
    from course_utils.caption_data.cache import image_batches
    from course_utils.vision.image_io import eval_transform

    keys = data.images()[: min(SAMPLE, max(8, len(data.captions) // 4))]
    batch = min(32, len(keys))
    decode_s, _ = _seconds(lambda: [None for _ in image_batches(data, keys, eval_transform(224), device=device)])
    images = torch.randn(batch, 3, 224, 224, device=device)  # (batch, 3, 224, 224)
    encoder = encoder.eval().to(device)
    with torch.no_grad():
        encoder(images)  # warm-up
        encode_s, _ = _seconds(lambda: [encoder(images) for _ in range(len(keys) // batch)])
    return {"decode_only_images_per_s": len(keys) / decode_s,
            "encoder_only_images_per_s": len(keys) // batch * batch / encode_s}  # fmt: skip


def stage_probe(folder: str, cache_root: str, device_name: str, threads: int) -> dict[str, Any]:
    """Run in a fresh process: every stage of the real-data path on the dataset in ``folder``."""
    from torch.utils.data import DataLoader

    from course_utils.caption_data.cache import FeatureCache
    from course_utils.caption_data.datasets import CaptionDataset, EvalDataset, collate_captions
    from course_utils.caption_data.formats import load_dataset
    from course_utils.captioning.attention import ShowAttendTell
    from course_utils.captioning.captioner import Captioner
    from course_utils.captioning.encoders import PretrainedEncoder
    from course_utils.captioning.train import TrainConfig, evaluate, make_optimizer, mixed_precision, train_one_epoch
    from course_utils.cli.cpu import speed_up_cpu
    from course_utils.sequence.text import tokenize
    from course_utils.sequence.vocab import Vocabulary

    device = torch.device(device_name)
    if device.type == "cpu":
        torch.set_num_threads(threads)
        speed_up_cpu()  # as train.fit and the demo command do
    torch.manual_seed(0)
    out: dict[str, Any] = {}

    def load() -> tuple[Any, Any]:
        data = load_dataset(Path(folder))
        tokens = [tokenize(c) for k in data.images("train") for c in data.captions[k]]
        return data, Vocabulary.build(tokens, min_freq=2)

    out["load_vocab_seconds"], (data, vocab) = _seconds(load)
    out.update(images=len(data.captions), captions=data.num_captions(), vocabulary=len(vocab),
               train_captions=data.num_captions("train"), test_images=len(data.images("test")))  # fmt: skip
    encoder = PretrainedEncoder("resnet50", 7, fine_tune_blocks=0, weights=None)
    out.update(_halves(data, encoder, device))
    caches = {s: FeatureCache(cache_root, data, s, "resnet50-random", 224) for s in SPLITS}
    out["feature_cache_seconds"], _ = _seconds(
        lambda: [c.build(encoder, device=device, progress=False, force=True) for c in caches.values()])
    out["feature_cache_mb"] = sum(c.array_path.stat().st_size for c in caches.values()) / 2**20
    model = Captioner(ShowAttendTell(len(vocab), encoder_dim=2048, **DECODER_512)).to(device)
    cfg = TrainConfig(batch_size=32, device=device_name)
    train = CaptionDataset(data, "train", vocab, features=caches["train"])
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True, collate_fn=collate_captions,
                        generator=torch.Generator().manual_seed(0), pin_memory=device.type == "cuda")  # fmt: skip
    optimizer = make_optimizer(model, cfg)
    autocast, scaler = mixed_precision(device, enabled=False)  # float32, as the CPU figures of the issue
    out["train_epoch_seconds"], _ = _seconds(
        lambda: train_one_epoch(model, loader, optimizer, scaler, cfg, autocast, device))
    test = EvalDataset(data, "test", features=caches["test"])
    for name, beam in (("greedy", 1), ("beam3", 3)):
        seconds, (scores, _) = _seconds(lambda b=beam: evaluate(model, test, vocab, beam_size=b, meteor=False))
        out[f"{name}_seconds"], out["protocol"] = seconds, scores["protocol"]
    out["peak_memory_mb"] = _peak_rss_mb() if device.type == "cpu" else torch.cuda.max_memory_allocated() / 2**20
    return out


def run_scale(folder: Path, cache_root: Path, device: torch.device, threads: int) -> dict[str, Any]:
    """:func:`stage_probe` in a fresh Python (its own peak memory, nothing cached from another scale)."""
    args = json.dumps([str(folder), str(cache_root), str(device), threads])
    code = ("import json, sys; from course_utils.tools.bench_scale import stage_probe; "
            "print(json.dumps(stage_probe(*json.loads(sys.argv[1]))))")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, env=env, timeout=7200)
    if done.returncode != 0:
        raise RuntimeError(f"scale probe on {folder.name} failed: {done.stderr.strip().splitlines()[-3:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rates(n: int, r: dict[str, Any]) -> dict[str, float]:
    """The printed figures of one scale, ``name_N: value``."""
    cache_rate = r["images"] / r["feature_cache_seconds"]
    slower = min(r["decode_only_images_per_s"], r["encoder_only_images_per_s"])
    figures = {
        "vocabulary": r["vocabulary"],
        "load_vocab_seconds": r["load_vocab_seconds"],
        "feature_cache_seconds": r["feature_cache_seconds"],
        "feature_cache_images_per_s": cache_rate,
        "decode_only_images_per_s": r["decode_only_images_per_s"],
        "encoder_only_images_per_s": r["encoder_only_images_per_s"],
        "feature_cache_overlap": cache_rate / slower,
        "feature_cache_mb": r["feature_cache_mb"],
        "train_epoch_seconds": r["train_epoch_seconds"],
        "train_captions_per_s": r["train_captions"] / r["train_epoch_seconds"],
        "greedy_images_per_s": r["test_images"] / r["greedy_seconds"],
        "beam3_images_per_s": r["test_images"] / r["beam3_seconds"],
        "peak_memory_mb": r["peak_memory_mb"],
    }
    return {f"scale_{k}_{n}": v for k, v in figures.items()}


STAGES = {  # stage -> (seconds key, what it grows with, the count of that in a scale's result)
    "load_vocab": ("load_vocab_seconds", "captions", "captions"),
    "feature_cache": ("feature_cache_seconds", "images", "images"),
    "train_epoch": ("train_epoch_seconds", "training captions", "train_captions"),
    "greedy": ("greedy_seconds", "test images", "test_images"),
    "beam3": ("beam3_seconds", "test images", "test_images"),
}


FIXED_COSTS = {  # what, in each stage, does not grow with the data
    "load_vocab": "reading captions.txt",
    "feature_cache": "paid once per split: the encoder's weights fingerprinted, the decoding workers started, "
                     "the first batches",
    "train_epoch": "the first batches",
    "greedy": "the scorers, the Java PTB tokenizer starting at each evaluation",
    "beam3": "the scorers, the Java PTB tokenizer starting at each evaluation",
}
TOO_SHORT_S = 2.0  # a stage under this at every scale is timing noise, not a growth to read


def growth(results: dict[int, dict[str, Any]]) -> dict[str, str]:
    """Per stage: how its cost per item changed from the smallest to the largest scale, and why.

    Not linear per item: the two scales are fitted as ``fixed + n / rate`` (two points, two
    unknowns), and a positive fixed part is named; faster than linear is explained where the
    sizes explain it (the vocabulary, hence the output layer, grows with the data)."""
    small, large = min(results), max(results)
    a, b = results[small], results[large]
    lines = {}
    for stage, (key, unit, count) in STAGES.items():
        per_item = (b[key] / b[count]) / (a[key] / a[count])  # 1.0 = linear in the number of items
        text = f"x{per_item:.2f} per {unit[:-1]} from {small} to {large} images"
        more = b[count] - a[count]  # e.g. the same test split at two small scales: no fit
        slope = (b[key] - a[key]) / more if more else 0.0  # seconds per item beyond the fixed part
        fixed = a[key] - slope * a[count]
        if max(a[key], b[key]) < TOO_SHORT_S:
            text += f": under {TOO_SHORT_S:.0f} s at every scale, too short to read a growth from"
        elif 0.8 <= per_item <= 1.25:
            text = f"linear ({text})"
        elif stage == "train_epoch" and per_item > 1:
            text += (f": the vocabulary grew from {a['vocabulary']} to {b['vocabulary']} words, and the output layer "
                     "(512 x vocabulary per word, forward and backward) with it")  # fmt: skip
        elif per_item < 1 and slope > 0:
            text += (f": linear with a fixed part, about {fixed:.2g} s ({FIXED_COSTS[stage]}) "
                     f"plus {1 / slope:.1f} {unit}/s")  # fmt: skip
        else:
            text += ": not explained by the sizes (see the load average of each scale)"
        lines[f"scale_growth_{stage}"] = text
    return lines


def busy(loads: dict[int, str], start_load: float, own_threads: int) -> float:
    """The busiest load from other processes: at the start of the run, then at each later scale the load
    average less the benchmark's own threads (the previous scale kept them busy up to that moment)."""
    later = [float(loads[n].split(":")[1].split(",")[0]) - own_threads for n in sorted(loads)[1:]]
    return max([start_load, *later])


def flickr8k_estimates(results: dict[int, dict[str, Any]]) -> dict[str, float]:
    """Seconds of each stage for all of Flickr8k (8,091 images), from the largest scale measured, linearly."""
    n = max(results)
    r = results[n]
    factor = 8091 / r["images"]
    return {f"scale_flickr8k_{stage}_seconds": r[key] * factor for stage, (key, _, _) in STAGES.items()}


def scale_report(command: str, machine: list[str], results: dict[int, dict[str, Any]], loads: dict[int, str],
                 seconds: float, start_load: float, own_threads: int) -> str:  # fmt: skip
    """The markdown section written into the report."""
    names = sorted({k.rsplit("_", 1)[0] for n, r in results.items() for k in rates(n, r)})
    header = "| figure | " + " | ".join(f"{n} images" for n in results) + " |"
    rows = [header, "|---" * (len(results) + 1) + "|"]
    for name in names:
        cells = " | ".join(f"{rates(n, r)[f'{name}_{n}']:.4g}" for n, r in results.items())
        rows.append(f"| `{name}` | {cells} |")
    grow = "\n".join(f"- `{k}`: {v}" for k, v in growth(results).items()) if len(results) > 1 else "- one scale only"
    estimates = "\n".join(f"- `{k}`: {v:.0f} s" for k, v in flickr8k_estimates(results).items())
    load_lines = "\n".join(f"- {n} images: `{loads[n]}`" for n in results)
    cores = os.cpu_count() or 1
    busiest = busy(loads, start_load, own_threads)
    largest = max(results)
    partial = (f"**Partial run**: the largest scale is {largest} images, not Flickr8k's 8,091. " if largest < 8091
               else "") + (f"**Busy machine**: other processes kept up to {busiest:.1f} of {cores} cores busy, so "
                          "every time below is longer than on idle cores; the ratios measured side by side are less "
                          "affected."
                          if busiest > 0.5 * cores else "")  # fmt: skip
    return f"""## The real-data path at Flickr8k scale

{partial}

Written by `{command}` ({seconds:.0f} s), on the stand-in Flickr8k of `course_utils/tools/bench_flickr.py`
(500 x 375 JPEGs, five captions per image, a Zipf vocabulary like Flickr8k's). Each scale ran in a fresh
process with {own_threads} threads; the load average (`uptime`) when the run started was {start_load:.2f}, and
when each scale started (after the first, it includes the benchmark's own threads):

{load_lines}

{chr(10).join(rows)}

Growth of each stage:

{grow}

Flickr8k (8,091 images) on this machine, extrapolated linearly from the largest scale measured:

{estimates}

Machine: {"; ".join(machine)}.
"""
