"""One training loop for every captioner of the kit (Show and Tell, Show Attend and Tell).

``fit(model, train_set, val_set, vocab, TrainConfig(...))`` does, per epoch:

1. teacher-forced training with Adam, gradient clipping, mixed precision where the
   device supports it (bfloat16 on Ampere+, float16 + loss scaling on older GPUs,
   float32 on CPU) and a tqdm progress bar;
2. validation loss and perplexity (teacher forcing), and BLEU-4 computed by *decoding*
   the validation images greedily (no teacher forcing: what the model really says);
3. a few sample captions printed beside a reference;
4. a learning-rate schedule step (StepLR(10, 0.5) as in seed 001, or cosine);
5. a checkpoint (``course_utils.captioning.checkpoint``) holding everything needed to resume
   *exactly*, and early stopping on the validation loss.

It returns the ``history`` dict (``train_loss``, ``val_loss``, ``val_perplexity``,
``val_bleu4``, ``lr``, ``seconds``) that ``plotting.plot_curves`` draws.

Distributed: launched with ``torchrun --nproc_per_node=N script.py``, the same call
trains with DistributedDataParallel (NCCL on GPUs, gloo on CPU): each process sees
``1/N`` of every epoch, gradients are averaged, process 0 prints and saves.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm.auto import tqdm

from course_utils.captioning.attention import DecoderOutput, doubly_stochastic_penalty
from course_utils.captioning.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from course_utils.captioning.decoding import CaptionResult, caption_batches
from course_utils.captioning.metrics import caption_scores, perplexity
from course_utils.env import amp_dtype_for, pick_device


@dataclass
class TrainConfig:
    """Settings of :func:`fit`. Defaults follow seed 001 (Adam 1e-3, StepLR(10, 0.5), batch 32)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    encoder_lr: Optional[float] = None  # learning rate of a trained encoder (None: same as lr)
    weight_decay: float = 0.0
    scheduler: str = "step"  # "step" (StepLR) or "cosine" (CosineAnnealingLR over the epochs)
    step_size: int = 10  # StepLR: multiply the learning rate by gamma every step_size epochs
    gamma: float = 0.5
    grad_clip: float = 5.0  # max gradient norm (0 = no clipping)
    alpha_c: float = 1.0  # weight of the doubly stochastic attention penalty
    concept_weight: float = 1.0  # weight of the auxiliary concept loss (models with a concept head)
    patience: int = 0  # early stopping: epochs without a better val_loss (0 = never stop early)
    bleu_images: int = 100  # validation images decoded for BLEU-4 each epoch (0 = skip)
    samples: int = 2  # sample captions printed per epoch
    max_len: int = 20  # longest generated caption (tokens)
    seed: int = 0
    num_workers: int = 0
    amp: bool = True  # mixed precision where the device supports it
    device: Optional[str] = None  # None: CUDA, else MPS, else CPU
    checkpoint: Optional[str] = None  # path of the last-epoch checkpoint; the best one gets ".best" added
    progress: bool = True
    extra: dict = field(default_factory=dict)  # free notes saved with the checkpoint


# --------------------------------------------------------------------------- batching by image
class GroupedCaptions(Dataset):
    """One item per image with its captions, from a ``CaptionDataset`` (which has one per pair).

    The encoder then runs once per image instead of once per caption, which is what makes
    end-to-end training affordable on a CPU. ``captions_per_image`` draws that many of the
    image's captions each time (None: all of them). Items: ``(image, [caption (length,), ...])``.
    """

    def __init__(self, pairs: Dataset, captions_per_image: Optional[int] = None) -> None:
        self.pairs, self.k = pairs, captions_per_image
        self.groups: dict[int, list[list[int]]] = {}
        for image_index, ids in pairs.pairs:
            self.groups.setdefault(image_index, []).append(ids)
        self.order = sorted(self.groups)

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        image_index = self.order[i]
        caps = self.groups[image_index]
        if self.k is not None and self.k < len(caps):
            caps = [caps[j] for j in torch.randperm(len(caps))[: self.k].tolist()]
        image = self.pairs.source(self.pairs.keys[image_index])
        return image, [torch.tensor(c, dtype=torch.long) for c in caps]


def collate_grouped(batch: list[tuple[torch.Tensor, list[torch.Tensor]]]):
    """Items of :class:`GroupedCaptions` -> ``images (n_images, ...)``, ``captions (n_captions, max_len)``,
    ``lengths (n_captions,)`` and ``owners (n_captions,)``: the image row of each caption."""
    from course_utils.caption_data.datasets import pad_captions

    images = torch.stack([b[0] for b in batch])
    caps = [c for b in batch for c in b[1]]
    owners = torch.tensor([i for i, b in enumerate(batch) for _ in b[1]], dtype=torch.long)
    captions, lengths = pad_captions(caps)
    return images, captions, lengths, owners


# --------------------------------------------------------------------------- loss
def caption_loss(
    out: DecoderOutput, alpha_c: float = 1.0, concept_weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(total, cross_entropy)``: mean cross-entropy per real token, plus the doubly stochastic
    penalty ``alpha_c * mean (1 - sum_t alpha)^2`` for attention models, plus
    ``concept_weight * binary cross-entropy`` of the concept head when the model has one."""
    ce = F.cross_entropy(out.logits.float(), out.targets)
    total = ce
    if out.alphas is not None and alpha_c:
        total = total + alpha_c * doubly_stochastic_penalty(out.alphas.float())
    if out.concept_logits is not None and concept_weight:
        bce = F.binary_cross_entropy_with_logits(out.concept_logits.float(), out.concept_targets)
        total = total + concept_weight * bce
    return total, ce


def forward_batch(model: nn.Module, batch: Sequence[torch.Tensor], device: torch.device) -> DecoderOutput:
    """Run the model on ``(inputs, captions, lengths[, owners])`` from a loader."""
    inputs, captions, lengths = (t.to(device, non_blocking=True) for t in batch[:3])
    owners = batch[3].to(device) if len(batch) > 3 else None
    return model(inputs, captions, lengths, owners)


# --------------------------------------------------------------------------- distributed
def distributed_info() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun`` (``(0, 1, 0)`` otherwise)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device) -> None:
    """Join the process group started by torchrun: NCCL on CUDA, gloo on CPU."""
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def validation_loss(model: nn.Module, loader: Any, device: torch.device, amp: Callable) -> tuple[float, int]:
    """Summed cross-entropy and token count over ``loader`` (teacher forcing, eval mode)."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in loader:
        with amp():
            out = forward_batch(model, batch, device)
        total += float(F.cross_entropy(out.logits.float(), out.targets, reduction="sum"))
        tokens += int(out.targets.numel())
    return total, tokens


def evaluate(
    model: nn.Module,
    eval_set: Dataset,
    vocab: Any,
    beam_size: int = 1,
    max_len: int = 20,
    batch_size: int = 64,
    limit: Optional[int] = None,
    meteor: Optional[bool] = False,
    length_penalty: float = 0.0,
) -> tuple[dict[str, float], list[CaptionResult]]:
    """Decode ``eval_set`` (an ``EvalDataset``) and score it against its references.

    Returns the scores (0-100, plus ``beam_size``) and one :class:`CaptionResult` per image.
    ``limit`` decodes only the first images; ``meteor=None`` adds METEOR when Java exists.
    """
    from course_utils.caption_data.datasets import collate_eval

    if limit is not None:
        eval_set = Subset(eval_set, range(min(limit, len(eval_set))))
    loader = DataLoader(eval_set, batch_size=batch_size, collate_fn=collate_eval)
    results = caption_batches(model, loader, vocab, beam_size, max_len, length_penalty)
    source = eval_set.dataset if isinstance(eval_set, Subset) else eval_set
    raw = getattr(source, "raw_references", None)  # the captions as written: the COCO protocol tokenises them
    references = [raw[r.image] if raw is not None else r.references for r in results]
    scores = caption_scores([r.words for r in results], references, meteor=meteor)
    return {**scores, "beam_size": float(beam_size)}, results


# --------------------------------------------------------------------------- the loop
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; the encoder's may get their own learning rate."""
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    enc = [p for p in model.parameters() if p.requires_grad and id(p) in enc_ids]
    dec = [p for p in model.parameters() if p.requires_grad and id(p) not in enc_ids]
    groups = [{"params": dec}]
    if enc:
        groups.append({"params": enc, "lr": cfg.encoder_lr or cfg.lr})
    try:  # one fused kernel for all parameters: the optimizer step ran 4x faster on a CPU (bench)
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without the fused kernel
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: StepLR(step_size, gamma) or cosine annealing to 0 over ``epochs``."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    raise ValueError(f"TrainConfig.scheduler must be 'step' or 'cosine', got {cfg.scheduler!r}")


def _loader(dataset: Dataset, cfg: TrainConfig, shuffle: bool, generator: Optional[torch.Generator],
            sampler: Any = None, collate: Optional[Callable] = None) -> DataLoader:  # fmt: skip
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                      generator=generator, collate_fn=collate, num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available())  # fmt: skip


def _collate_for(dataset: Dataset) -> Callable:
    if isinstance(dataset, GroupedCaptions) or isinstance(getattr(dataset, "dataset", None), GroupedCaptions):
        return collate_grouped
    from course_utils.caption_data.datasets import collate_captions

    return collate_captions


def _grad_scaler(device: torch.device) -> Any:
    """Loss scaling for float16 (its small range would round tiny gradients to zero)."""
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device.type)
    return torch.cuda.amp.GradScaler()


def _bar(iterable: Any, cfg: TrainConfig, rank: int, desc: str) -> Iterator:
    return tqdm(iterable, desc=desc, leave=False, disable=not cfg.progress or rank != 0, mininterval=1.0)


def train_one_epoch(
    net: nn.Module,
    batches: Any,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    cfg: TrainConfig,
    amp: Callable,
    device: torch.device,
) -> tuple[float, int]:
    """One pass over ``batches``: forward, loss, backward, clip, step. Returns the summed
    cross-entropy and the number of target tokens (their ratio is the train loss)."""
    net.train()
    loss_sum, tokens = torch.zeros((), device=device), 0
    for batch in batches:
        with amp():
            out = forward_batch(net, batch, device)
        loss, ce = caption_loss(out, cfg.alpha_c, cfg.concept_weight)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:  # float16: scale the loss up so small gradients survive, then back down
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        n = int(out.targets.numel())
        loss_sum += ce.detach() * n
        tokens += n
        if getattr(batches, "disable", True) is False:  # a visible tqdm bar
            batches.set_postfix(loss=f"{float(ce.detach()):.3f}", refresh=False)
    return float(loss_sum), tokens


def fit(
    model: nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    vocab: Any,
    cfg: TrainConfig,
    eval_set: Optional[Dataset] = None,
    model_config: Optional[dict] = None,
    resume: Union[str, Path, None] = None,
    log: Callable[[str], None] = print,
) -> dict[str, list[float]]:
    """Train ``model`` (a ``Captioner``) and return its history (see the module docstring).

    ``train_set``/``val_set``: ``CaptionDataset`` or :class:`GroupedCaptions`;
    ``eval_set``: an ``EvalDataset`` of validation images, for BLEU-4 and samples;
    ``model_config``: the ``build_captioner`` config, stored in checkpoints;
    ``resume``: a checkpoint written by an earlier ``fit``, continued to ``cfg.epochs``.
    ``fit`` seeds torch's global generator with ``cfg.seed`` (dropout) and owns the one
    that shuffles batches, so a run is reproducible and a resumed run continues exactly.
    Under DistributedDataParallel, exact resumption holds for process 0's random state.
    """
    rank, world, local_rank = distributed_info()
    device = pick_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if world > 1:
        init_distributed(device)
    torch.manual_seed(cfg.seed + rank)  # dropout masks and augmentation
    generator = torch.Generator().manual_seed(cfg.seed)  # batch order
    amp_dtype = amp_dtype_for(device.type) if cfg.amp else None
    amp = lambda: torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    scaler = _grad_scaler(device) if amp_dtype == torch.float16 else None

    model.to(device)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)
    history: dict[str, list[float]] = {k: [] for k in ("train_loss", "val_loss", "val_perplexity", "val_bleu4",
                                                        "lr", "seconds")}  # fmt: skip
    trainer = {"best_val_loss": math.inf, "bad_epochs": 0, "best_epoch": 0}
    start_epoch = 0
    if resume is not None:
        ckpt = load_checkpoint(resume)  # on the CPU: RNG states must stay there; weights are copied over
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{resume}: does not fit this model ({str(err).splitlines()[0]})") from None
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        history, trainer, start_epoch = ckpt["history"], ckpt["trainer"], int(ckpt["epoch"])
        set_rng_state(ckpt["rng"], generator)
        log(f"resumed from {resume} after epoch {start_epoch}")

    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if world > 1 else model  # fmt: skip
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=cfg.seed) if world > 1 else None
    train_loader = _loader(train_set, cfg, True, generator, sampler, _collate_for(train_set))
    val_part = Subset(val_set, range(rank, len(val_set), world)) if world > 1 else val_set
    val_loader = _loader(val_part, cfg, False, None, None, _collate_for(val_set))

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.time()
        if sampler is not None:
            sampler.set_epoch(epoch)
        bar = _bar(train_loader, cfg, rank, f"epoch {epoch}/{cfg.epochs}")
        loss_sum, tokens = train_one_epoch(net, bar, optimizer, scaler, cfg, amp, device)
        train_loss = loss_sum / max(tokens, 1)

        val_sum, val_tokens = validation_loss(model, val_loader, device, amp)
        if world > 1:  # every process saw part of the data: add up
            sums = torch.tensor([train_loss * tokens, tokens, val_sum, val_tokens], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            train_loss, val_loss = float(sums[0] / sums[1]), float(sums[2] / max(float(sums[3]), 1.0))
        else:
            val_loss = val_sum / max(val_tokens, 1)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()

        bleu4, protocol = math.nan, ""
        if rank == 0 and eval_set is not None and cfg.bleu_images > 0:
            scores, results = evaluate(model, eval_set, vocab, 1, cfg.max_len, limit=cfg.bleu_images)
            bleu4, protocol = scores["bleu4"], f" ({scores['protocol']})"
            for r in results[: cfg.samples]:
                log(f"  sample {r.image}: {' '.join(r.words)}   | reference: {' '.join(r.references[0])}")
        for key, value in (("train_loss", train_loss), ("val_loss", val_loss), ("val_perplexity", perplexity(val_loss)),
                           ("val_bleu4", bleu4), ("lr", lr), ("seconds", time.time() - t0)):  # fmt: skip
            history[key].append(value)
        improved = val_loss < trainer["best_val_loss"]
        if improved:
            trainer.update(best_val_loss=val_loss, bad_epochs=0, best_epoch=epoch)
        else:
            trainer["bad_epochs"] += 1
        if rank == 0:
            log(f"epoch {epoch}/{cfg.epochs}: train_loss {train_loss:.3f}, val_loss {val_loss:.3f}, "
                f"val_perplexity {perplexity(val_loss):.2f}, val_bleu4 {bleu4:.1f}{protocol}, lr {lr:.2g}, "
                f"{history['seconds'][-1]:.1f} s")  # fmt: skip
            if cfg.checkpoint:
                contents = dict(
                    model=model.state_dict(), optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                    config=dict(model_config or {}), vocab=list(getattr(vocab, "itos", [])), epoch=epoch,
                    history=history, trainer=dict(trainer), train_config=asdict(cfg), rng=rng_state(generator),
                )  # fmt: skip
                if scaler is not None:
                    contents["scaler"] = scaler.state_dict()
                save_checkpoint(cfg.checkpoint, **contents)
                if improved:
                    save_checkpoint(best_path(cfg.checkpoint), **contents)
        if cfg.patience and trainer["bad_epochs"] >= cfg.patience:
            if rank == 0:
                log(f"early stopping: no better val_loss for {cfg.patience} epochs "
                    f"(best: epoch {trainer['best_epoch']})")
            break
    return history


def best_path(checkpoint: Union[str, Path]) -> Path:
    """``runs/last.pt`` -> ``runs/last.best.pt``: where :func:`fit` keeps the best epoch."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".best" + p.suffix)
