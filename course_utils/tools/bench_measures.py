"""The ratios of ``bench``: each kit fast path against its plain baseline, side by side."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from course_utils.captioning.attention import ShowAttendTell
from course_utils.tools.bench_data import (
    GRID,
    MODEL_PX,
    BenchData,
    PaddedDecoder,
    Sizes,
    caption_loader,
    decoder_model,
    kit_loss,
    kit_optimizer,
    padded_loss,
    ratio,
    stepper,
)
from course_utils.tools.bench_timing import (
    count_flops,
    cycle,
    record_products,
    replay_products,
    side_by_side,
    timed,
    yardstick,
)


def measure_feature_cache(bench: BenchData, sizes: Sizes, vocab_size: int, device: torch.device) -> dict[str, Any]:
    """Training steps/s: cached features vs the frozen ResNet-50 on every batch of decoded JPEGs."""
    from course_utils.captioning.captioner import Captioner
    from course_utils.captioning.encoders import PretrainedEncoder
    from course_utils.vision.image_io import eval_transform

    sides, models = {}, {}
    for name, encoder, source, steps in (
        ("kit", None, {"features": bench.features}, sizes.cached_steps),
        ("baseline", PretrainedEncoder("resnet50", GRID, 0, weights=None),
         {"transform": eval_transform(MODEL_PX)}, sizes.resnet_steps),
    ):  # fmt: skip
        model = Captioner(decoder_model(ShowAttendTell, vocab_size), encoder).to(device).train()
        optimizer = kit_optimizer(model)
        batches = cycle(caption_loader(bench, sizes, **source))
        step = stepper(model, optimizer, batches, device, kit_loss)
        sides[name], models[name] = (step, steps, step), model
    batch = next(iter(caption_loader(bench, sizes, features=bench.features)))
    inputs, captions, lengths = (t.to(device) for t in batch)
    kit = models["kit"]
    forward_backward = lambda: kit_loss(kit(inputs, captions, lengths)).backward()  # noqa: E731
    step_gflop = count_flops(forward_backward) / 1e9
    calls = record_products(forward_backward)
    products = replay_products(calls)  # the step's matrix products alone, for the bound of decoder_matmul_share
    kit.zero_grad(set_to_none=True)
    sides["products"] = (products, sizes.cached_steps, products)
    # the yardstick in the same rounds: shared cores speed up and slow down during a run
    matmul, matmul_gflop = yardstick(device)
    sides["matmul"] = (matmul, 5, matmul)
    seconds = side_by_side(sides, sizes.rounds, device)
    images = torch.randn(sizes.batch, 3, MODEL_PX, MODEL_PX, device=device)
    with torch.no_grad():
        encoder_gflop = count_flops(lambda: models["baseline"].encoder(images)) / 1e9
    return ratio({k: 1 / v for k, v in seconds.items()}, "steps/s", decoder=kit.decoder, step_gflop=step_gflop,
                 gflops=step_gflop / seconds["kit"], products_gflops=step_gflop / seconds["products"],
                 products=len(calls), rows=len(lengths),
                 matmul_gflops=matmul_gflop / seconds["matmul"], encoder_gflop=encoder_gflop,
                 bound=(encoder_gflop + step_gflop) / step_gflop)  # fmt: skip


def same_loss(bench: BenchData, sizes: Sizes, vocab_size: int, device: torch.device) -> float:
    """Largest difference between the two decoders' losses on a few batches (same weights, eval mode)."""
    kit = decoder_model(ShowAttendTell, vocab_size).to(device).eval()
    base = decoder_model(PaddedDecoder, vocab_size).to(device).eval()
    base.load_state_dict(kit.state_dict())
    worst = 0.0
    with torch.no_grad():
        for _, batch in zip(range(3), caption_loader(bench, sizes, features=bench.features)):
            inputs, captions, lengths = (t.to(device) for t in batch)
            worst = max(worst, abs(float(kit_loss(kit(inputs, captions, lengths)) -
                                         padded_loss(base(inputs, captions, lengths)))))  # fmt: skip
    return worst


def measure_decoder(bench: BenchData, sizes: Sizes, vocab_size: int, device: torch.device) -> dict[str, Any]:
    """Training tokens/s of the kit's decoder vs :class:`PaddedDecoder`, on the same batches in memory.

    Both sides walk through the same list of batches in the same order, so they train on
    exactly the same tokens; tokens/s = real target tokens per batch / seconds per step.
    """
    loader = cycle(caption_loader(bench, sizes, features=bench.features))
    batches = [next(loader) for _ in range(sizes.decoder_steps + 1)]  # a warm-up step, then the timed ones
    timed_batches = batches[1:]  # each round: warm up on batches[0], time the others
    tokens = sum(int((b[2] - 1).sum()) for b in timed_batches) / len(timed_batches)  # real target tokens per step
    padded = sum(int(b[1].shape[0] * (b[1].shape[1] - 1)) for b in timed_batches) / len(timed_batches)
    sides = {}
    for name, cls, loss_fn in (("kit", ShowAttendTell, kit_loss), ("baseline", PaddedDecoder, padded_loss)):
        model = decoder_model(cls, vocab_size).to(device).train()
        optimizer = kit_optimizer(model)
        step = stepper(model, optimizer, cycle(batches), device, loss_fn)
        sides[name] = (step, sizes.decoder_steps, step)
    seconds = side_by_side(sides, sizes.rounds, device)
    return ratio({k: tokens / v for k, v in seconds.items()}, "tokens/s", padding=1 - tokens / padded,
                 loss_gap=same_loss(bench, sizes, vocab_size, device))  # fmt: skip


def measure_beam(bench: BenchData, sizes: Sizes, decoder: nn.Module, device: torch.device) -> dict[str, Any]:
    """Captions/s of batched beam search (beam 3) vs one image at a time, same model and images."""
    from course_utils.captioning.beam_fast import fast_beam_search as beam_search  # what decode() uses

    keys = bench.features.keys
    rows = [torch.as_tensor(bench.features[keys[i % len(keys)]]) for i in range(sizes.beam_images)]
    features = torch.stack(rows).to(device)  # (beam_images, 49, 2048)
    decoder = decoder.to(device).eval()
    start_id, end_id = bench.vocab.start_id, bench.vocab.end_id
    out: dict[str, list] = {}

    def batched() -> None:
        out["kit"] = beam_search(decoder, features, start_id, end_id, beam_size=3)

    def one_by_one() -> None:
        out["baseline"] = [beam_search(decoder, features[i : i + 1], start_id, end_id, beam_size=3)[0]
                           for i in range(len(features))]  # fmt: skip

    warm = lambda: beam_search(decoder, features[:2], start_id, end_id, beam_size=3)
    seconds = side_by_side({"kit": (batched, 1, warm), "baseline": (one_by_one, 1, warm)}, sizes.rounds, device)
    same = sum(a.ids == b.ids for a, b in zip(out["kit"], out["baseline"]))
    gflop = count_flops(batched) / 1e9  # one image at a time computes the same rows: the same arithmetic
    return ratio({k: len(features) / v for k, v in seconds.items()}, "captions/s", same=same, images=len(features),
                 finished=sum(c.finished for c in out["kit"]), gflop=gflop,
                 gflops={k: gflop / v for k, v in seconds.items()})  # fmt: skip


def measure_image_store(bench: BenchData, sizes: Sizes) -> dict[str, Any]:
    """Images/s read for training (``GroupedCaptions`` batches): the ImageStore vs decoding every JPEG."""
    from torch.utils.data import DataLoader

    from course_utils.caption_data.datasets import CaptionDataset
    from course_utils.captioning.train import GroupedCaptions, collate_grouped
    from course_utils.vision.image_io import eval_transform

    transform = eval_transform(MODEL_PX)
    sides = {}
    for name, source in (("kit", {"store": bench.store}), ("baseline", {})):
        images = GroupedCaptions(CaptionDataset(bench.data, "train", bench.vocab, transform=transform, **source))
        loader = DataLoader(images, batch_size=sizes.batch, collate_fn=collate_grouped)
        read = lambda loader=loader: [None for _ in loader]
        sides[name] = (read, 1, read)
    seconds = side_by_side(sides, sizes.rounds, torch.device("cpu"))
    return ratio({k: len(bench.features) / v for k, v in seconds.items()}, "images/s")


# --------------------------------------------------------------------------- CUDA only
def measure_cuda_extraction(device: torch.device, batch: int = 64, iters: int = 10) -> dict[str, Any]:
    """ResNet-50 feature extraction images/s: mixed precision + channels-last vs float32.

    Both run the same network under ``torch.no_grad()`` with ``cudnn.benchmark`` on, on the
    same random 224 px batch; the first calls (cuDNN autotuning) are not timed.
    """
    from course_utils.captioning.encoders import PretrainedEncoder
    from course_utils.env import amp_dtype_for

    torch.backends.cudnn.benchmark = True  # both sides: cuDNN picks its fastest kernels for these shapes
    encoder = PretrainedEncoder("resnet50", GRID, 0, weights=None).to(device).eval()
    images = torch.randn(batch, 3, MODEL_PX, MODEL_PX, device=device)  # (batch, 3, 224, 224)
    dtype = amp_dtype_for("cuda")

    @torch.no_grad()
    def fp32() -> None:
        encoder(images)

    with torch.no_grad():
        reference = encoder(images).float()
    fp32_rate = batch * iters / timed(fp32, iters, device, warmup=3)

    encoder = encoder.to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def fast() -> None:
        with torch.autocast("cuda", dtype=dtype):
            encoder(images_cl)

    fast_rate = batch * iters / timed(fast, iters, device, warmup=3)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        error = float((encoder(images_cl).float() - reference).abs().max() / reference.abs().max())
    return {"value": fast_rate / fp32_rate, "kit": fast_rate, "baseline": fp32_rate, "unit": "images/s",
            "dtype": str(dtype).replace("torch.", ""), "relative_error": error, "batch": batch}  # fmt: skip
