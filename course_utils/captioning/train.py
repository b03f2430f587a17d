"""One training loop for every captioner of the kit (Show and Tell, Show Attend and Tell).

``fit(model, train_set, val_set, vocab, TrainConfig(...))`` does, per epoch:

1. teacher-forced training with Adam, gradient clipping, mixed precision where the
   device supports it (bfloat16 on Ampere+, float16 + loss scaling on older GPUs,
   float32 on CPU) and a tqdm progress bar;
2. validation loss and perplexity (teacher forcing), and BLEU-4 computed by *decoding*
   the validation images greedily (no teacher forcing: what the model really says);
3. a few sample captions printed beside a reference;
4. a learning-rate schedule step (StepLR(10, 0.5) as in the lab report *TP2 Attention*, or cosine);
5. a checkpoint (``course_utils.captioning.checkpoint``) holding everything needed to resume
   *exactly*, and early stopping on the validation loss.

It returns the ``history`` dict (``train_loss``, ``val_loss``, ``val_perplexity``,
``val_bleu4``, ``lr``, ``seconds``) that ``plotting.plot_curves`` draws.

The loop itself is short (:func:`fit`, :func:`train_one_epoch`); the rest of the file
is its parts: the loss, mixed precision, the optimiser and schedule, and the
:class:`TrainingState` that checkpoints save and resumed runs restore.

Distributed: launched with ``torchrun --nproc_per_node=N script.py``, the same call
trains with DistributedDataParallel (``course_utils.captioning.distributed``): each
process sees ``1/N`` of every epoch, gradients are averaged, process 0 evaluates,
prints and saves.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from course_utils.basics.networks import evaluating
from course_utils.captioning import distributed
from course_utils.captioning.attention import DecoderOutput, doubly_stochastic_penalty
from course_utils.captioning.batches import GroupedCaptions, collate_for, collate_grouped  # noqa: F401 (for notebooks)
from course_utils.captioning.checkpoint import (
    CheckpointError,
    load_checkpoint,
    private_rng,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from course_utils.captioning.decoding import CaptionResult, caption_batches
from course_utils.captioning.metrics import caption_scores, perplexity
from course_utils.env import amp_dtype_for
from course_utils.vision.early_stopping import EarlyStopping


@dataclass
class TrainConfig:
    """Settings of :func:`fit`. Defaults follow the lab report *TP2 Attention* (Adam 1e-3,
    StepLR(10, 0.5), batch 32)."""

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
    """Run the model on a batch from a loader, moved to ``device``: ``inputs`` (images
    ``(batch, 3, H, W)`` or cached features ``(batch, num_pixels, encoder_dim)``), ``captions
    (n, max_len)``, ``lengths (n,)`` and, for :class:`GroupedCaptions`, ``owners (n,)``."""
    inputs, captions, lengths = (t.to(device, non_blocking=True) for t in batch[:3])
    owners = batch[3].to(device) if len(batch) > 3 else None
    return model(inputs, captions, lengths, owners)


# --------------------------------------------------------------------------- evaluation
@torch.no_grad()
def validation_loss(
    model: nn.Module, loader: Any, device: torch.device, autocast: Optional[contextlib.AbstractContextManager] = None
) -> tuple[float, int]:
    """Summed cross-entropy and token count over ``loader`` (teacher forcing, eval mode; the
    model gets its mode back)."""
    autocast = autocast or contextlib.nullcontext()
    total, tokens = 0.0, 0
    with evaluating(model):
        for batch in loader:
            with autocast:
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


# --------------------------------------------------------------------------- the parts of the loop
def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the trainable parameters; the encoder's may get their own learning rate."""
    encoder = getattr(model, "encoder", None)
    enc_ids = {id(p) for p in encoder.parameters()} if encoder is not None else set()
    enc = [p for p in model.parameters() if p.requires_grad and id(p) in enc_ids]
    dec = [p for p in model.parameters() if p.requires_grad and id(p) not in enc_ids]
    groups = [{"params": dec}]
    if enc:
        groups.append({"params": enc, "lr": cfg.encoder_lr or cfg.lr})
    if next(model.parameters()).device.type in ("cpu", "cuda"):  # the devices with a fused Adam kernel
        try:  # one kernel for all parameters (see docs/benchmarks.md)
            # copies: torch < 2.4 writes fused=True into the groups before refusing CPU tensors
            return torch.optim.Adam([dict(g) for g in groups], lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch: CUDA only, or no fused Adam at all
            pass
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch: StepLR(step_size, gamma) or cosine annealing to 0 over ``epochs``."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))
    raise ValueError(f"TrainConfig.scheduler must be 'step' or 'cosine', got {cfg.scheduler!r}")


def autocast_available(device_type: str) -> bool:
    """Whether ``torch.autocast`` knows ``device_type`` (Apple's "mps" only from torch 2.5)."""
    check = getattr(torch.amp, "is_autocast_available", None)  # torch >= 2.4
    return check(device_type) if check is not None else device_type in ("cuda", "cpu")


def mixed_precision(device: torch.device, enabled: bool = True) -> tuple[torch.autocast, Any]:
    """``(autocast, scaler)`` for a run on ``device``: the loop uses both the same way everywhere.

    bfloat16 on recent GPUs, float16 on older GPUs and MPS (with loss scaling: float16's
    small range would round tiny gradients to zero), float32 on the CPU, where both are
    switched off (``enabled=False``) and do nothing.
    """
    dtype = amp_dtype_for(device.type) if enabled and autocast_available(device.type) else None
    # A switched-off autocast names the CPU: every torch accepts it, whatever the device.
    autocast = torch.autocast(device.type if dtype else "cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None)
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return autocast, torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return autocast, torch.cuda.amp.GradScaler(enabled=dtype == torch.float16 and device.type == "cuda")


def _loader(dataset: Dataset, cfg: TrainConfig, generator: Optional[torch.Generator] = None,
            sampler: Any = None) -> DataLoader:  # fmt: skip
    """Batches of ``dataset``; shuffled by ``generator`` (training) unless a sampler shares them out."""
    shuffle = generator is not None and sampler is None
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=shuffle, sampler=sampler, generator=generator,
                      collate_fn=collate_for(dataset), num_workers=cfg.num_workers,
                      pin_memory=torch.cuda.is_available())  # fmt: skip


def train_one_epoch(
    net: nn.Module,
    batches: Any,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    cfg: TrainConfig,
    autocast: contextlib.AbstractContextManager,
    device: torch.device,
) -> tuple[float, int]:
    """One pass over ``batches``: forward, loss, backward, clip, step. Returns the summed
    cross-entropy and the number of target tokens (their ratio is the train loss).

    ``scaler`` multiplies the loss before ``backward`` and divides the gradients back
    (``unscale_``) before clipping; switched off, each of its calls is a plain step.
    """
    net.train()
    loss_sum, tokens = torch.zeros((), device=device), 0
    for batch in batches:
        with autocast:
            out = forward_batch(net, batch, device)
        loss, ce = caption_loss(out, cfg.alpha_c, cfg.concept_weight)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        n = int(out.targets.numel())
        loss_sum += ce.detach() * n  # stays on the device: no wait for the GPU at each batch
        tokens += n
        if getattr(batches, "disable", True) is False:  # a visible tqdm bar
            batches.set_postfix(loss=f"{float(ce.detach()):.3f}", refresh=False)
    return float(loss_sum), tokens


@dataclass
class TrainingState:
    """What changes while :func:`fit` runs; a checkpoint saves it and a resumed run restores it."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: Any
    stopper: EarlyStopping  # the losses seen so far: when to stop, which epoch was best
    generator: torch.Generator  # the batch order
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    epoch: int = 0  # epochs done

    def record(self, epoch: int, train_loss: float, val_loss: float, bleu4: float, lr: float, seconds: float) -> None:
        """Append one epoch's metrics to ``history``."""
        values = (train_loss, val_loss, perplexity(val_loss), bleu4, lr, seconds)
        for key, value in zip(HISTORY_KEYS, values):
            self.history[key].append(value)
        self.epoch = epoch

    def contents(self, cfg: TrainConfig, vocab: Any, model_config: Optional[dict], device: torch.device) -> dict:
        """The checkpoint's fields (see ``course_utils.captioning.checkpoint``)."""
        return dict(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
                    scheduler=self.scheduler.state_dict(), scaler=self.scaler.state_dict(),
                    config=dict(model_config or {}), vocab=list(getattr(vocab, "itos", [])), epoch=self.epoch,
                    history=self.history, early_stopping=self.stopper.state_dict(), train_config=asdict(cfg),
                    rng=rng_state(self.generator, device))  # fmt: skip

    def restore(self, path: Union[str, Path], device: torch.device, log: Callable[[str], None]) -> None:
        """Continue from the checkpoint at ``path``, written by :meth:`contents`."""
        ckpt = load_checkpoint(path)  # on the CPU: RNG states must stay there; weights are copied over
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{path}: does not fit this model ({str(err).splitlines()[0]})") from None
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):  # empty when the run that wrote it did not scale losses
            self.scaler.load_state_dict(ckpt["scaler"])
        self.history, self.epoch = ckpt["history"], int(ckpt["epoch"])
        # Older checkpoints kept early-stopping counters ("trainer"): the losses give them back.
        saved = ckpt.get("early_stopping") or {"min_delta": 0.0, "losses": self.history["val_loss"]}
        self.stopper.load_state_dict({**saved, "patience": self.stopper.patience})  # this run's patience
        set_rng_state(ckpt["rng"], self.generator, device, log)
        log(f"resumed from {path} after epoch {self.epoch}")


HISTORY_KEYS = ("train_loss", "val_loss", "val_perplexity", "val_bleu4", "lr", "seconds")


def bleu_and_samples(model: nn.Module, eval_set: Optional[Dataset], vocab: Any, cfg: TrainConfig,
                     log: Callable[[str], None]) -> float:  # fmt: skip
    """BLEU-4 of greedy captions of the first ``cfg.bleu_images`` images (NaN when skipped); logs samples."""
    if eval_set is None or cfg.bleu_images <= 0:
        return math.nan
    scores, results = evaluate(model, eval_set, vocab, 1, cfg.max_len, limit=cfg.bleu_images)
    for r in results[: cfg.samples]:
        log(f"  sample {r.image}: {' '.join(r.words)}   | reference: {' '.join(r.references[0])}")
    return scores["bleu4"]


def save_epoch(state: TrainingState, cfg: TrainConfig, vocab: Any, model_config: Optional[dict],
               device: torch.device) -> None:  # fmt: skip
    """Write the last epoch's checkpoint, and the best one's when this epoch improved."""
    if cfg.checkpoint:
        contents = state.contents(cfg, vocab, model_config, device)
        save_checkpoint(cfg.checkpoint, **contents)
        if state.stopper.improved:
            save_checkpoint(best_path(cfg.checkpoint), **contents)


def epoch_line(history: dict[str, list[float]], epoch: int, epochs: int) -> str:
    """``epoch 3/10: train_loss 2.811, val_loss 2.904, ...``: the last values of ``history``."""
    h = {key: values[-1] for key, values in history.items()}
    return (f"epoch {epoch}/{epochs}: train_loss {h['train_loss']:.3f}, val_loss {h['val_loss']:.3f}, "
            f"val_perplexity {h['val_perplexity']:.2f}, val_bleu4 {h['val_bleu4']:.1f}, lr {h['lr']:.2g}, "
            f"{h['seconds']:.1f} s")  # fmt: skip


# --------------------------------------------------------------------------- the loop
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
    Random numbers (dropout, batch order) come from ``cfg.seed`` alone, so a run is
    reproducible and a resumed run continues exactly; the caller's random state is given
    back unchanged. Under DistributedDataParallel, exact resumption holds for process 0.
    """
    with distributed.placement(cfg.device) as place, private_rng(place.device):
        torch.manual_seed(cfg.seed + place.rank)  # dropout masks and augmentation
        model.to(place.device)
        autocast, scaler = mixed_precision(place.device, cfg.amp)
        optimizer = make_optimizer(model, cfg)
        state = TrainingState(model, optimizer, make_scheduler(optimizer, cfg), scaler,
                              EarlyStopping(cfg.patience, keep_weights=False),  # the best weights go to a file
                              torch.Generator().manual_seed(cfg.seed))  # fmt: skip
        if resume is not None:
            state.restore(resume, place.device, log)
        net = distributed.wrap(model, place)
        sampler = distributed.train_sampler(train_set, place, cfg.seed)
        train_loader = _loader(train_set, cfg, state.generator, sampler)
        val_loader = _loader(distributed.shard(val_set, place), cfg)

        for epoch in range(state.epoch + 1, cfg.epochs + 1):
            start = time.time()
            if sampler is not None:
                sampler.set_epoch(epoch)  # a new order each epoch, shared out the same way on every rank
            bar = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, mininterval=1.0,
                       disable=not cfg.progress or not place.is_main)  # fmt: skip
            loss_sum, tokens = train_one_epoch(net, bar, optimizer, scaler, cfg, autocast, place.device)
            distributed.sync_buffers(model, place)
            val_sum, val_tokens = validation_loss(model, val_loader, place.device, autocast)
            loss_sum, tokens, val_sum, val_tokens = distributed.sum_over_ranks(
                [loss_sum, tokens, val_sum, val_tokens], place)  # fmt: skip
            lr = optimizer.param_groups[0]["lr"]
            state.scheduler.step()
            bleu4 = bleu_and_samples(model, eval_set, vocab, cfg, log) if place.is_main else math.nan

            val_loss = val_sum / max(val_tokens, 1)
            state.record(epoch, loss_sum / max(tokens, 1), val_loss, bleu4, lr, time.time() - start)
            stop = state.stopper.step(val_loss)  # the same losses on every rank: the same decision
            if place.is_main:
                log(epoch_line(state.history, epoch, cfg.epochs))
                save_epoch(state, cfg, vocab, model_config, place.device)
            if stop and place.is_main:
                log(f"early stopping: no better val_loss for {cfg.patience} epochs "
                    f"(best: epoch {state.stopper.best_epoch})")  # fmt: skip
            if stop:
                break
        return state.history


def best_path(checkpoint: Union[str, Path]) -> Path:
    """``runs/last.pt`` -> ``runs/last.best.pt``: where :func:`fit` keeps the best epoch."""
    p = Path(checkpoint)
    return p.with_name(p.stem + ".best" + p.suffix)
