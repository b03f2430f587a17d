"""The training loop on a tiny synthetic dataset: it learns, resumes exactly, and runs under torchrun."""

import contextlib
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from course_utils.caption_data.datasets import CaptionDataset, EvalDataset, collate_captions
from course_utils.caption_data.formats import load_dataset
from course_utils.caption_data.synth import generate
from course_utils.captioning.captioner import build_captioner
from course_utils.captioning.checkpoint import CheckpointError, load_checkpoint
from course_utils.captioning.train import (
    GroupedCaptions,
    TrainConfig,
    best_path,
    collate_grouped,
    evaluate,
    fit,
    validation_loss,
)
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary
from course_utils.vision.image_io import eval_transform

ROOT = Path(__file__).resolve().parent.parent
SIZE = 32


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models: one thread avoids the threads waiting for each other on busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = generate(tmp_path_factory.mktemp("synth") / "tiny", n_images=60, image_size=SIZE, seed=3)
    data = load_dataset(folder)
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
    tf = eval_transform(SIZE)
    return {
        "data": data,
        "vocab": vocab,
        "train": GroupedCaptions(CaptionDataset(data, "train", vocab, transform=tf), captions_per_image=3),
        "val": CaptionDataset(data, "val", vocab, transform=tf),
        "eval": EvalDataset(data, "val", transform=tf),
    }


def config(vocab, **kw):
    return {"decoder": "attention", "vocab_size": len(vocab), "encoder": "small_cnn", "grid": 4,
            "channels": [8, 16, 16], "embed_dim": 16, "hidden_dim": 32, "attention_dim": 16, "dropout": 0.2,
            **kw}  # fmt: skip


def model_for(vocab, seed=0, **kw):
    torch.manual_seed(seed)
    return build_captioner(config(vocab, **kw))


def quiet(*_):
    pass


def test_grouped_batches_share_one_encoder_pass(tiny):
    batch = collate_grouped([tiny["train"][0], tiny["train"][1]])
    images, captions, lengths, owners = batch
    assert images.shape == (2, 3, SIZE, SIZE)
    assert owners.tolist() == [0, 0, 0, 1, 1, 1]
    assert captions.shape[0] == lengths.shape[0] == 6
    out = model_for(tiny["vocab"])(images, captions, lengths, owners)
    assert out.alphas.shape == (6, int(lengths.max()) - 1, 16)


def test_short_training_lowers_validation_loss(tiny, tmp_path):
    model = model_for(tiny["vocab"], concepts=True)
    loader = torch.utils.data.DataLoader(tiny["val"], batch_size=16, collate_fn=collate_captions)
    before, tokens = validation_loss(model, loader, torch.device("cpu"), contextlib.nullcontext)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=5e-3, bleu_images=4, samples=1, progress=False,
                      checkpoint=str(tmp_path / "last.pt"), device="cpu")  # fmt: skip
    lines = []
    history = fit(model, tiny["train"], tiny["val"], tiny["vocab"], cfg, eval_set=tiny["eval"],
                  model_config=config(tiny["vocab"], concepts=True), log=lines.append)  # fmt: skip
    assert history["val_loss"][-1] < before / tokens
    assert set(history) >= {"train_loss", "val_loss", "val_perplexity", "val_bleu4", "lr", "seconds"}
    assert all(len(v) == 3 for v in history.values())
    assert math.isclose(history["val_perplexity"][-1], math.exp(history["val_loss"][-1]), rel_tol=1e-9)
    assert 0 <= history["val_bleu4"][-1] <= 100
    assert sum("sample" in line for line in lines) == 3 and sum(line.startswith("epoch") for line in lines) == 3
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 3 and ckpt["vocab"] == tiny["vocab"].itos and ckpt["config"]["concepts"] is True
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "history", "trainer", "train_config"}
    assert best_path(tmp_path / "last.pt").is_file()
    scores, results = evaluate(model, tiny["eval"], tiny["vocab"], beam_size=2, max_len=12)
    assert scores["beam_size"] == 2 and len(results) == len(tiny["eval"])


def test_resume_is_exact(tiny, tmp_path):
    cfg = dict(batch_size=8, lr=3e-3, scheduler="step", step_size=1, gamma=0.5, bleu_images=4, samples=1,
               progress=False, device="cpu", seed=5)  # fmt: skip
    straight = model_for(tiny["vocab"], seed=1)
    h1 = fit(straight, tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=2, **cfg),
             eval_set=tiny["eval"], log=quiet)  # fmt: skip

    first = model_for(tiny["vocab"], seed=1)
    ckpt = tmp_path / "interrupted.pt"
    fit(first, tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=1, checkpoint=str(ckpt), **cfg),
        eval_set=tiny["eval"], model_config=config(tiny["vocab"]), log=quiet)  # fmt: skip
    torch.manual_seed(123)  # a new session: other random state, other initial weights
    resumed = model_for(tiny["vocab"], seed=2)
    h2 = fit(resumed, tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=2, **cfg),
             eval_set=tiny["eval"], resume=ckpt, log=quiet)  # fmt: skip
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{name} differs after resuming"
    assert h1["val_loss"] == h2["val_loss"] and h1["lr"] == h2["lr"]


def test_resume_refuses_another_model(tiny, tmp_path):
    ckpt = tmp_path / "small.pt"
    cfg = TrainConfig(epochs=1, batch_size=8, bleu_images=0, progress=False, device="cpu", checkpoint=str(ckpt))
    fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"], cfg, log=quiet)
    other = build_captioner(config(tiny["vocab"], hidden_dim=48))
    with pytest.raises(CheckpointError, match="does not fit this model"):
        fit(other, tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=2, device="cpu", progress=False),
            resume=ckpt, log=quiet)  # fmt: skip


def test_early_stopping(tiny):
    cfg = TrainConfig(epochs=6, batch_size=8, lr=1e-9, patience=1, bleu_images=0, progress=False, device="cpu")
    lines = []
    history = fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"], cfg, log=lines.append)
    assert len(history["val_loss"]) < 6
    assert any("early stopping" in line for line in lines)


DDP_SCRIPT = """
import sys, torch, torch.distributed as dist
sys.path.insert(0, {root!r})
from course_utils.captioning.captioner import build_captioner
from course_utils.caption_data.datasets import CaptionDataset, EvalDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.vision.image_io import eval_transform
from course_utils.sequence.text import tokenize
from course_utils.captioning.train import GroupedCaptions, TrainConfig, fit
from course_utils.sequence.vocab import Vocabulary

data = load_dataset({folder!r})
vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
tf = eval_transform({size})
torch.manual_seed(0)
model = build_captioner({config!r} | {{"vocab_size": len(vocab)}})
cfg = TrainConfig(epochs=2, batch_size=4, bleu_images=4, samples=1, progress=False, device="cpu",
                  checkpoint={ckpt!r})
fit(model, GroupedCaptions(CaptionDataset(data, "train", vocab, transform=tf), 2),
    CaptionDataset(data, "val", vocab, transform=tf), vocab, cfg, eval_set=EvalDataset(data, "val", transform=tf))
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
sums = [torch.zeros(2) for _ in range(dist.get_world_size())]
dist.all_gather(sums, torch.stack([flat.sum(), flat.abs().sum()]))
if dist.get_rank() == 0:
    print("replicas identical:", all(torch.equal(s, sums[0]) for s in sums), "world", dist.get_world_size())
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny, tmp_path):
    script = tmp_path / "ddp_train.py"
    ckpt = tmp_path / "ddp.pt"
    cfg = {k: v for k, v in config(tiny["vocab"]).items() if k != "vocab_size"}
    script.write_text(textwrap.dedent(DDP_SCRIPT).format(root=str(ROOT), folder=str(tiny["data"].image_dir.parent),
                                                         size=SIZE, config=cfg, ckpt=str(ckpt)))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_FAST": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replicas identical: True world 2" in proc.stdout
    assert proc.stdout.count("epoch 2/2:") == 1  # only rank 0 prints
    assert load_checkpoint(ckpt)["epoch"] == 2


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_path(tiny, monkeypatch, dtype):
    """The code path GPUs take (autocast, and loss scaling for float16), exercised on the CPU."""
    import course_utils.captioning.train as train

    if dtype == torch.float16:
        try:
            with torch.autocast("cpu", dtype=dtype):
                pass
        except RuntimeError:  # torch < 2.4: CPU autocast has bfloat16 only (GPUs still take this path)
            pytest.skip("this torch's CPU autocast has no float16")
    monkeypatch.setattr(train, "amp_dtype_for", lambda device_type: dtype)
    cfg = TrainConfig(epochs=1, batch_size=8, bleu_images=2, progress=False, device="cpu")
    history = fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"], cfg, eval_set=tiny["eval"],
                  log=quiet)  # fmt: skip
    assert math.isfinite(history["train_loss"][0]) and math.isfinite(history["val_loss"][0])
