"""The printed lines and the markdown report of ``bench``."""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import platform
from pathlib import Path
from typing import Any, Optional

import torch

from course_utils.files import write_atomic
from course_utils.tools.bench_data import GOALS, BenchData, Sizes


# --------------------------------------------------------------------------- report
def load_averages() -> tuple[float, float, float]:
    """The 1, 5 and 15-minute load averages, as ``uptime`` prints them (NaN where the OS has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3


def machine_lines(device: torch.device) -> list[str]:
    """CPU model, cores, threads, load, device and versions, one ``key: value`` per line."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = load_averages()[0]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    return [f"cpu: {cpu}", f"cores: {os.cpu_count()}", f"torch_threads: {torch.get_num_threads()}",
            f"load_average_at_start: {load:.2f}", f"device: {device.type}", f"gpu: {gpu}",
            f"python: {platform.python_version()}", f"torch: {torch.__version__}",
            f"platform: {platform.platform()}"]  # fmt: skip


def goal_text(name: str, value: float, r: Optional[dict] = None) -> str:
    """``>= goal: met`` / ``MISSED``, or the arithmetic bound of ``feature_cache_speedup``."""
    if r is not None and r.get("bound"):
        return (f"bound ({r['encoder_gflop']:.0f} + {r['step_gflop']:.1f}) / {r['step_gflop']:.1f} = "
                f"{r['bound']:.1f}: {r['value'] / r['bound'] * 100:.0f} % of it")  # fmt: skip
    goal = GOALS.get(name)
    if goal is None:
        return ""
    return f">= {goal:g}: {'met' if value >= goal else 'MISSED'}"


def notebook_table(r: dict[str, Any]) -> str:
    """Seconds per notebook (fast mode), when the suite ran."""
    per = r.get("per_notebook") or {}
    if not per:
        return ""
    lines = "\n".join(f"| {name} | {sec:.1f} |" for name, sec in per.items())
    return f"Notebooks in fast mode ({r.get('note', '')}):\n\n| notebook | seconds |\n|---|---|\n{lines}\n\n"


def missed_notes(results: dict[str, dict], vocab_size: int, peak: float) -> list[str]:
    """One paragraph per missed goal (and on the bounded feature-cache ratio), with the numbers that explain it."""
    notes = []
    cache = results.get("feature_cache_speedup", {})
    if cache.get("value") is not None:
        kit_s, base_s = 1 / cache["kit"], 1 / cache["baseline"]
        dec_g, enc_g = cache.get("step_gflop", 0.0), cache.get("encoder_gflop", 0.0)
        notes.append(
            "- `feature_cache_speedup` (no goal: an earlier goal of 20 was above this bound): "
            "arithmetic bounds it. "
            f"The baseline's step runs ResNet-50 on the batch ({enc_g:.0f} GFLOP of convolutions and matrix products) "
            f"and the decoder ({dec_g:.1f} GFLOP "
            f"forward and backward, with its {vocab_size}-word output layer and the 2,048-d context entering the "
            f"LSTM at every word); the kit's step runs the decoder only. At the same speed per operation the "
            f"ratio would be ({enc_g:.0f} + {dec_g:.1f}) / {dec_g:.1f} = {(enc_g + dec_g) / max(dec_g, 1e-9):.1f}. "
            f"Measured: {kit_s * 1000:.0f} ms against {base_s:.2f} s per step, so the decoder already runs at "
            f"{cache.get('gflops', 0):.0f} GFLOP/s against {(enc_g + dec_g) / base_s:.0f} for the baseline's step "
            "(its element-wise work, Adam and the per-word small products included; reading a batch from the "
            f"cache takes about 2 ms), and one large matrix product reaches {cache.get('matmul_gflops', peak):.0f} "
            f"here in the same rounds (`decoder_matmul_share`). With the benchmark "
            "data's own small vocabulary (second line of the table) the decoder does less work."
        )
    beam = results.get("beam_batch_speedup", {})
    if beam.get("value") is not None and beam["value"] < GOALS["beam_batch_speedup"]:
        rates = beam.get("gflops", {})
        notes.append(
            f"- `beam_batch_speedup`: both sides do the same arithmetic ({beam.get('gflop', 0):.0f} GFLOP of "
            f"matrix products for the {beam.get('images', 0)} images x 3 beams); batched runs it at "
            f"{rates.get('kit', 0):.0f} GFLOP/s, one image at a time at {rates.get('baseline', 0):.0f} GFLOP/s, "
            f"and the ratio is that gain; one large matrix product reaches {peak:.0f} GFLOP/s here. Batched, each "
            "word is a few large products (the output layer: rows x 256 x vocabulary; the LSTM: rows x 2,304 x "
            "1,024) plus the top-k and log-sum-exp over the vocabulary, and the first word of each image is "
            "computed once per image. One image at a time, each word re-reads the "
            "decoder's 25 MB of weights for 3 rows, which two cores with large caches do fast. A GPU, whose "
            "arithmetic is far faster than its memory, should show a larger gain (not measured here)."
        )
    share = results.get("decoder_matmul_share", {})
    if share.get("value") is not None and share["value"] < GOALS["decoder_matmul_share"]:
        bound, goal = share.get("products_share", 0.0), GOALS["decoder_matmul_share"]
        notes.append(
            f"- `decoder_matmul_share`: the decoder's training step is {share.get('products', 0)} matrix products "
            f"(forward and backward), most of them one per word with at most {share.get('rows', 0)} rows (the "
            "LSTM's 2,304 x 1,024 and 256 x 1,024 weights, the gate's 256 x 2,048, the attention's 256 x 256, "
            "each with its backward products) and a few large ones (the region projection, the output layer). "
            f"Replayed alone, with the same shapes and memory layout on random numbers, they run at "
            f"{share.get('products_gflops', 0):.0f} GFLOP/s: {bound:.2f} of the yardstick, the most any step made "
            f"of them could reach here. The step reaches {share['value'] / max(bound, 1e-9) * 100:.0f} % of that; "
            "the rest of its time is the element-wise work (attention's tanh and softmax, the LSTM gates), the "
            "loss over the vocabulary, gradient clipping and Adam. "
            + (f"The goal of {goal:g} is above what these products reach on this machine: only larger products "
               "(a larger batch, or the LSTM's weight gradients summed over the words in one product) would "
               "raise it." if bound < goal else
               f"The products alone would meet the goal of {goal:g}: the step's other work is what misses it.")
        )
    dec = results.get("decoder_speedup", {})
    if dec.get("value") is not None and dec["value"] < GOALS["decoder_speedup"]:
        notes.append(
            f"- `decoder_speedup`: {dec.get('padding', 0) * 100:.0f} % of the baseline's positions are padding, "
            "so skipping them can save at most that share of the per-row work; the per-word costs that do not "
            "depend on the batch (weight gradients of the LSTM and the gate) are paid by both."
        )
    return notes


def write_report(path: Path, command: str, machine: list[str], results: dict[str, dict], sizes_name: str,
                 sizes: Sizes, bench: BenchData, seconds: float, vocab_size: int, peak: float) -> None:  # fmt: skip
    """``docs/benchmarks.md``: results, machine, command and what each baseline does; written atomically."""
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    steps_per_epoch = math.ceil(bench.data.num_captions("train") / sizes.batch)
    epoch_seconds = steps_per_epoch / results["feature_cache_speedup"]["baseline"]  # the baseline's way
    rows = []
    for name, r in results.items():
        if r.get("value") is None:
            rows.append(f"| `{name}` | skipped | | {r.get('skipped', '')} |")
        elif "kit" in r:
            rows.append(f"| `{name}` | **{r['value']:.1f}** | {r['kit']:.3g} vs {r['baseline']:.3g} {r['unit']} | "
                        f"{goal_text(name, r['value'], r)} |")  # fmt: skip
            if "own_vocab" in r:
                o = r["own_vocab"]
                rows.append(
                    f"| `{name}`, {len(bench.vocab)}-word output layer | {o['value']:.1f} | "
                    f"{o['kit']:.3g} vs {o['baseline']:.3g} {o['unit']} | {goal_text(name, o['value'], o)} |"
                )
        else:
            rows.append(f"| `{name}` | **{r['value']:.{r.get('digits', 1)}f}** | | {r.get('note', '')} "
                        f"{goal_text(name, r['value'])} |")  # fmt: skip
    text = f"""# Benchmarks

Written by `{command}` on {now} ({seconds:.0f} s); run it again to regenerate this file.
Both sides of every ratio run in the same process, on the same machine and data, one after
the other. Sizes: `{sizes_name}` ({sizes}).

## Results

| measure | value | kit vs baseline | goal |
|---|---|---|---|
{chr(10).join(rows)}

{notebook_table(results.get("notebook_suite_seconds", {}))}## Goals not met, and why

{chr(10).join(missed_notes(results, vocab_size, peak)) or "Every goal is met."}

## Machine and settings

{chr(10).join("- " + line for line in machine)}

## What is compared

- **feature_cache_speedup**: training steps per second of the attention captioner
  (`ShowAttendTell` of the size in the lab report *TP2 Attention*: embedding 256, LSTM 256, attention 256, output layer
  {vocab_size} words; the kit's Adam, gradient clipping, batch {sizes.batch}), fed by a `DataLoader`
  over `CaptionDataset`. Each ratio is also given with the data's own {len(bench.vocab)}-word output layer.
  Kit: features read from the float16 `FeatureCache` (49 x 2048 per image).
  Baseline (the lab report *TP2 Attention*): every batch decodes its {sizes.image_px} px JPEGs, resizes them
  to 224 px and runs the frozen ResNet-50 in float32. Building the cache once took {bench.cache_seconds:.1f} s for
  {len(bench.features)} images: {bench.cache_seconds / epoch_seconds * 100:.0f} % of one baseline epoch over the same
  split ({epoch_seconds:.0f} s for its {bench.data.num_captions("train")} captions, one per step).
  ResNet-50 runs with random weights (offline): the compute is the same as with ImageNet's.
- **decoder_speedup**: training tokens (real target words) per second on the same batches of cached
  features held in memory. Kit: `ShowAttendTell.forward` sorts captions by length and shrinks the
  batch as they end. Baseline: `PaddedDecoder` (same layers, same weights) steps over every position
  of the whole batch up to the longest caption and masks the loss with `ignore_index=<pad>`.
  Padded positions in these batches: {results["decoder_speedup"].get("padding", 0) * 100:.0f} %; the two losses
  agree to {results["decoder_speedup"].get("loss_gap", 0):.1e} on the same weights.
- **beam_batch_speedup**: `decoding.beam_search` (beam 3, max 20 words) on
  {results["beam_batch_speedup"].get("images", 0)} images at once vs the same function called on one image at
  a time, same model; {results["beam_batch_speedup"].get("same", 0)} of
  {results["beam_batch_speedup"].get("images", 0)} captions are identical between the two.
- **image_store_speedup**: images per second delivered for training (`GroupedCaptions` batches through
  a `DataLoader`, ImageNet normalisation). Kit: `ImageStore` (decoded and resized to 224 px once, a
  memory-mapped uint8 array). Baseline: open, decode and resize every {sizes.image_px} px JPEG again.
  Building the store once took {bench.store_seconds:.1f} s.
- **notebook_suite_seconds**: every notebook executed headless with `COURSE_FAST=1` through
  nbclient, as `tests/test_notebooks.py` does (skipped with `--quick`).
- **peak_memory_mb**: one training step on cached features at batch {sizes.memory_batch}, in a fresh
  process after one warm-up step: {results["peak_memory_mb"].get("what", "")}.
  Before the step the process held {results["peak_memory_mb"].get("before_mb") or 0:.0f} MB
  (Python, torch and its libraries, the model, Adam's state and the batch), so the step itself
  added {results["peak_memory_mb"]["value"] - (results["peak_memory_mb"].get("before_mb") or 0):.0f} MB.
- **amp_channels_last_speedup** (CUDA only): ResNet-50 feature extraction images per second with
  `torch.autocast` (bfloat16 on Ampere or newer, float16 before) and channels-last tensors vs
  float32, batch 64.
"""
    write_section(path, "bench", text)


def report_line(name: str, r: dict[str, Any]) -> list[str]:
    """``name: value`` and an indented detail line."""
    if r.get("value") is None:
        return [f"{name}: skipped ({r.get('skipped', '')})"]
    lines = [f"{name}: {r['value']:.{r.get('digits', 1)}f}"]
    if "kit" in r:
        goal = goal_text(name, r["value"], r)
        lines.append(f"  kit {r['kit']:.3g} vs baseline {r['baseline']:.3g} {r['unit']} {goal}")
    return lines


def write_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``path``, keeping the rest.

    The full benchmark and the scale study write their own sections of one report; a
    report written before the sections existed counts as the ``bench`` section.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{text.strip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if old and "<!-- bench:start -->" not in old and "<!-- scale:start -->" not in old:
        old = f"<!-- bench:start -->\n{old.strip()}\n<!-- bench:end -->\n"
    if start in old and end in old:
        before, rest = old.split(start, 1)
        new = before + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = (old.rstrip() + "\n\n" if old else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, new)
