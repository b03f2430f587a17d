"""``python -m course_utils bench``: the kit's fast paths measured against the plain baselines
of the source documents.

Every measure runs both sides in the same process, on the same machine and the same
data (the embedded synthetic dataset, written as JPEGs of ``Sizes.image_px`` pixels,
about the size of a Flickr photo), and prints one line ``name: value``:

* ``feature_cache_speedup``: training steps/s of the attention captioner on cached
  ResNet-50 features (``cache.FeatureCache``) / steps/s when the frozen ResNet-50 runs on
  every batch of freshly decoded JPEGs (the pipeline of the lab report *TP2 Attention*, batch 32, float32);
* ``decoder_speedup``: training tokens/s of ``ShowAttendTell`` (the batch shrinks as
  captions end) / a decoder of the same size stepping over every padded position of the
  whole batch (:class:`PaddedDecoder`), both on the same batches of cached features;
* ``beam_batch_speedup``: captions/s of ``beam_fast.fast_beam_search`` on 64 images at once /
  the same function called on one image at a time, same model, beam 3;
* ``image_store_speedup``: images/s read for training from ``cache.ImageStore`` / images/s
  when every JPEG is decoded and resized again (each epoch, as the seed does);
* ``notebook_suite_seconds``: every notebook executed headless in fast mode, as
  ``tests/test_notebooks.py`` does (skipped with ``--quick``);
* ``peak_memory_mb``: memory of one training step on cached features at batch 64,
  measured in a fresh process (CPU: peak resident memory; CUDA: ``max_memory_allocated``);
* on CUDA only, ``amp_channels_last_speedup``: ResNet-50 feature extraction images/s with
  mixed precision and the channels-last layout / plain float32.

Baselines are written the straightforward way, never slowed down: same model sizes, same
batches, same optimizer (the kit's), same settings. The settings, for both sides:

* the decoder has the size of the lab report *TP2 Attention*, output layer included (12,509 words, its Flickr30k
  vocabulary; ``--vocab-size``); the ratios are printed again with the benchmark data's own
  small vocabulary, because the output layer's share of the work changes them;
* the same CPU threads (``--threads``; by default the demo's rule: every core, or one when
  other programs keep the cores busy);
* the kit's two CPU settings (``course_utils.cli.cpu.speed_up_cpu``), as the ``demo`` command applies
  them: subnormal floats flushed to zero (without it both sides ran up to 3x slower, at
  random, depending on the data) and freed memory kept by glibc for the next step.

``feature_cache_speedup`` is printed beside its arithmetic bound, (ResNet-50 + decoder
operations) / decoder operations, and ``decoder_matmul_share`` is the decoder's training
GFLOP/s over one large matrix product's (the yardstick of this machine's arithmetic), timed in
the same rounds, beside its bound: the same over the step's own matrix products replayed alone
(``bench_timing.record_products``), the most a step made of those products can reach.

``--scale`` times the real-data path at Flickr8k's size instead (``bench_scale``).

A full run writes the results, the machine and the command to ``docs/benchmarks.md``;
``--quick`` and ``--smoke`` write to ``runs/bench/`` unless ``--out`` says otherwise, so
they never overwrite the full report. Each kind of run replaces only its own section.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from course_utils.cli.args import device, non_negative_int
from course_utils.cli.cpu import choose_threads, speed_up_cpu
from course_utils.tools.bench_data import ENCODER_DIM, SEED_VOCAB, SIZES, prepare
from course_utils.tools.bench_flickr import first_images, make_flickr8k_like
from course_utils.tools.bench_measures import (
    measure_beam,
    measure_cuda_extraction,
    measure_decoder,
    measure_feature_cache,
    measure_image_store,
)
from course_utils.tools.bench_memory import measure_memory
from course_utils.tools.bench_notebooks import run_notebooks
from course_utils.tools.bench_report import (
    goal_text,
    load_averages,
    machine_lines,
    report_line,
    write_report,
    write_section,
)
from course_utils.tools.bench_scale import (
    QUICK_SCALES,
    SCALES,
    flickr8k_estimates,
    growth,
    rates,
    run_scale,
    scale_report,
)
from course_utils.tools.bench_timing import matmul_gflops

FULL_REPORT = "docs/benchmarks.md"  # written only by a full run
QUICK_REPORTS = "runs/bench"


def report_path(args: argparse.Namespace, sizes_name: str, kind: str = "") -> Path:
    """``--out``, else the full report for a full run and ``runs/bench/<kind><sizes>.md`` otherwise."""
    if args.out:
        return Path(args.out)
    return Path(FULL_REPORT) if sizes_name == "full" else Path(QUICK_REPORTS) / f"benchmarks-{kind}{sizes_name}.md"


# --------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller sizes, no notebook suite (~3 min on 2 cores)")
    parser.add_argument("--scale", action="store_true",
                        help="time each stage of the real-data path at 1,000-8,091 images (Flickr8k's size; "
                             "about 30 min on 2 cores, --quick stops at 2,000)")  # fmt: skip
    parser.add_argument("--scales", type=_scales, default=None, metavar="N,N,...",
                        help="--scale at these numbers of images instead (e.g. 250,500 on a busy machine)")
    parser.add_argument("--smoke", action="store_true", help="the smallest sizes: checks that it runs (tests)")
    parser.add_argument("--out", default=None, help=f"markdown report to write (default: {FULL_REPORT} for a full "
                        f"run, {QUICK_REPORTS}/ for --quick and --smoke, which never overwrite the full report)")
    parser.add_argument("--data", default=None, help="folder for the benchmark's data (default: DATA_ROOT/bench)")
    parser.add_argument("--device", type=device, default=None, help="force a device, e.g. cpu")
    parser.add_argument(
        "--vocab-size",
        type=non_negative_int,
        default=SEED_VOCAB,
        help=f"output layer of the decoder (default {SEED_VOCAB}, the lab report's; 0 = the data's own)",
    )
    parser.add_argument(
        "--threads",
        type=non_negative_int,
        default=0,
        help="CPU threads for torch, the same for both sides (default 0 = the demo's auto rule: "
        "every core, or 1 when other programs keep them busy)",
    )


def run(args: argparse.Namespace) -> int:
    saved_threads = torch.get_num_threads()
    try:
        return measure_scale(args) if args.scale else measure_all(args)
    finally:  # leave the process as it was (tests call run() in-process)
        torch.set_num_threads(saved_threads)
        torch.set_flush_denormal(False)


def measure_all(args: argparse.Namespace) -> int:
    """Every measure, printed as it comes, then the report."""
    from course_utils.env import data_root, pick_device

    start = time.perf_counter()
    sizes_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[sizes_name]
    device = pick_device(args.device)
    root = Path(args.data) if args.data else data_root() / "bench"
    log = lambda s: print(s, flush=True)
    threads = choose_threads(args.threads) if device.type == "cpu" else str(torch.get_num_threads())
    cpu = speed_up_cpu()  # both sides, see the module docstring
    peak = matmul_gflops(device)
    machine = [
        *machine_lines(device),
        f"threads_chosen: {threads}",
        f"float32_matmul_gflops: {peak:.0f} (2048 x 2048 @ 2048 x 2048: the arithmetic yardstick)",
        *(f"{name}: {'on' if on else 'not available here'} (both sides)" for name, on in cpu.items()),
    ]
    log("\n".join(machine))
    torch.manual_seed(0)
    bench = prepare(root, sizes, device, log)
    results: dict[str, dict] = {}

    def show(name: str, r: dict) -> None:
        results[name] = r
        log("\n".join(report_line(name, r)))

    vocab_size = args.vocab_size or len(bench.vocab)
    vocab_sizes = [vocab_size] + ([len(bench.vocab)] if vocab_size != len(bench.vocab) else [])
    for v in vocab_sizes:  # the headline size first, then the data's own vocabulary as a second look
        log(f"decoder: embedding 256, LSTM 256, attention 256, {ENCODER_DIM}-d regions, output layer {v} words")
        cache = measure_feature_cache(bench, sizes, v, device)
        found = {"feature_cache_speedup": cache, "decoder_speedup": measure_decoder(bench, sizes, v, device)}
        found["beam_batch_speedup"] = measure_beam(bench, sizes, cache.pop("decoder"), device)
        if v == vocab_size:  # the decoder's arithmetic rate against the machine's matrix-multiply rate
            share = matmul_share(cache)
        for name, r in found.items():
            if v == vocab_size:
                show(name, r)
            else:
                results[name]["own_vocab"] = r
                log(f"{name} with the data's own {v}-word output layer: {r['value']:.1f}  "
                    f"(kit {r['kit']:.3g} vs baseline {r['baseline']:.3g} {r['unit']})")  # fmt: skip
    show("decoder_matmul_share", share)
    log(f"  {share['note']} {goal_text('decoder_matmul_share', share['value'])}")
    show("image_store_speedup", measure_image_store(bench, sizes))
    if args.quick or args.smoke:
        show("notebook_suite_seconds", {"value": None, "skipped": "--quick"})
    else:
        show("notebook_suite_seconds", run_notebooks(log))
        log(f"  {results['notebook_suite_seconds'].get('note', '')}")
    memory = measure_memory(bench, sizes, vocab_size, device)
    show("peak_memory_mb", {**memory, "note": f"batch {memory['batch']}: {memory['what']}"})
    before = memory["before_mb"] or 0
    log(
        f"  {memory['what']}, batch {memory['batch']}: {before:.0f} MB before the step, "
        f"+{memory['value'] - before:.0f} MB during it"
    )
    if device.type == "cuda":
        log(f"gpu: {torch.cuda.get_device_name(device)}")
        show("amp_channels_last_speedup", measure_cuda_extraction(device))
    else:
        log("amp_channels_last_speedup: skipped (no CUDA device: mixed precision + channels-last is measured on GPUs)")
        results["amp_channels_last_speedup"] = {"value": None, "skipped": "no CUDA device"}
    command = "python -m course_utils bench" + (" --quick" if args.quick else "") + (" --smoke" if args.smoke else "")
    command += f" --threads {args.threads}" if args.threads else ""
    seconds = time.perf_counter() - start
    out = report_path(args, sizes_name)
    write_report(out, command, machine, results, sizes_name, sizes, bench, seconds, vocab_size, peak)
    log(f"seconds: {seconds:.0f}")
    log(f"written: {out}")
    return 0


def matmul_share(cache: dict) -> dict:
    """``decoder_matmul_share`` and its bound from ``measure_feature_cache``: the training step's
    GFLOP/s and that of its matrix products alone, each over the yardstick's timed in the same rounds."""
    matmul = cache["matmul_gflops"]
    bound = cache["products_gflops"] / matmul  # the same products alone: no step made of them can beat this
    return {"value": cache["gflops"] / matmul, "digits": 2, "products_share": bound, "products": cache["products"],
            "rows": cache["rows"], "products_gflops": cache["products_gflops"],
            "note": f"decoder training {cache['gflops']:.0f} GFLOP/s / matmul {matmul:.0f} GFLOP/s "
                    f"(bound {bound:.2f}: its {cache['products']} matrix products alone, replayed, "
                    f"{cache['products_gflops']:.0f} GFLOP/s)"}  # fmt: skip


def measure_scale(args: argparse.Namespace) -> int:
    """``--scale``: the stand-in Flickr8k written once, then every stage at each scale, then the report."""
    from course_utils.env import data_root, pick_device

    start, start_load = time.perf_counter(), load_averages()[0]
    scales = args.scales or ((12, 24) if args.smoke else QUICK_SCALES if args.quick else SCALES)
    device = pick_device(args.device)
    root = (Path(args.data) if args.data else data_root() / "bench") / "scale"
    threads = choose_threads(args.threads) if device.type == "cpu" else str(torch.get_num_threads())
    machine = [*machine_lines(device), f"threads_chosen: {threads}"]
    print("\n".join(machine), flush=True)
    source = make_flickr8k_like(root / f"flickr8k_like_{max(scales)}", max(scales))
    print(f"data: {source} ({max(scales)} JPEGs of 500 x 375, 5 captions each)", flush=True)
    results, loads = {}, {}
    for n in scales:
        loads[n] = uptime()
        print(f"scale {n}: {loads[n]}", flush=True)
        folder = first_images(source, root / f"first_{n}", n)
        results[n] = run_scale(folder, root / f"first_{n}" / "cache", device, torch.get_num_threads())
        for name, value in rates(n, results[n]).items():
            print(f"{name}: {value:.{2 if 'overlap' in name else 1}f}", flush=True)
    overlaps = {n: rates(n, r)[f"scale_feature_cache_overlap_{n}"] for n, r in results.items()}
    print(f"scale_feature_cache_overlap_goal: {goal_text('feature_cache_overlap', min(overlaps.values()))} "
          f"(lowest {min(overlaps.values()):.2f}, at {min(overlaps, key=overlaps.get)} images)", flush=True)
    for name, text in {**growth(results), **{k: f"{v:.0f} s" for k, v in flickr8k_estimates(results).items()}}.items():
        print(f"{name}: {text}", flush=True)
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    command = "python -m course_utils bench --scale" + {"full": "", "quick": " --quick", "smoke": " --smoke"}[size]
    command += f" --scales {','.join(map(str, scales))}" if args.scales else ""
    out = report_path(args, size, kind="scale-")
    write_section(out, "scale", scale_report(command, machine, results, loads, time.perf_counter() - start,
                                             start_load, torch.get_num_threads()))
    print(f"seconds: {time.perf_counter() - start:.0f}")
    print(f"written: {out}")
    return 0


def _scales(text: str) -> tuple[int, ...]:
    """``"250,500"`` -> ``(250, 500)``: increasing numbers of images, at most Flickr8k's 8,091."""
    try:
        scales = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers of images like 250,500, got {text!r}") from None
    if not scales or list(scales) != sorted(set(scales)) or scales[0] < 12 or scales[-1] > 8091:
        raise argparse.ArgumentTypeError(f"expected increasing numbers of images from 12 (the first prefix with a "
                                         f"test image) to 8091, got {text!r}")
    return scales


def uptime() -> str:
    """The load averages, as ``uptime`` prints them."""
    one, five, fifteen = load_averages()
    return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"
