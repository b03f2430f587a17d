"""The training loop on a tiny synthetic dataset: it learns, resumes exactly, and runs under torchrun."""

import math
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from processes import run_process_group

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
    before, tokens = validation_loss(model, loader, torch.device("cpu"))
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
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "history", "early_stopping", "train_config"}
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
import course_utils.captioning.checkpoint as checkpoint
import course_utils.captioning.train as train
from course_utils.captioning.captioner import build_captioner
from course_utils.captioning.distributed import placement
from course_utils.caption_data.datasets import CaptionDataset, EvalDataset
from course_utils.caption_data.formats import load_dataset
from course_utils.vision.image_io import eval_transform
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary

def main(place):
    rank, world = place.rank, place.world_size
    calls = {{"writes": 0, "evaluations": 0}}
    real_open, real_evaluate = checkpoint.atomic_open, train.evaluate

    def counted_open(*args, **kwargs):
        calls["writes"] += 1
        return real_open(*args, **kwargs)

    def counted_evaluate(*args, **kwargs):
        calls["evaluations"] += 1
        return real_evaluate(*args, **kwargs)

    checkpoint.atomic_open, train.evaluate = counted_open, counted_evaluate
    data = load_dataset({folder!r})
    vocab = Vocabulary.build([tokenize(c) for k in data.images("train") for c in data.captions[k]], min_freq=1)
    tf = eval_transform({size})
    torch.manual_seed(0)
    model = build_captioner({config!r} | {{"vocab_size": len(vocab)}})
    cfg = train.TrainConfig(epochs=1, batch_size=4, bleu_images=4, samples=1, progress=False, device="cpu",
                            checkpoint={ckpt!r})
    train.fit(model, train.GroupedCaptions(CaptionDataset(data, "train", vocab, transform=tf), 2),
              CaptionDataset(data, "val", vocab, transform=tf), vocab, cfg,
              eval_set=EvalDataset(data, "val", transform=tf))
    state = model.state_dict()
    flat = torch.cat([t.detach().double().flatten() for t in state.values()])  # parameters and buffers
    everyone = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(everyone, flat)
    counts = [torch.zeros(2) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([calls["writes"], calls["evaluations"]], dtype=torch.float32))
    if rank == 0:
        buffers = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
        print("replicas identical:", all(torch.equal(x, everyone[0]) for x in everyone[1:]),
              "world", world, "running statistics", buffers)
        print("writes and evaluations per rank:", [c.int().tolist() for c in counts])

# the kit's own way in and out of the group: fit, inside it, leaves it to this block for the comparison,
# and every rank leaves at once at the end
with placement("cpu") as place:
    main(place)
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tiny, tmp_path):
    """Two processes (gloo): after an epoch both hold the same model, BatchNorm statistics included,
    and only rank 0 evaluated, printed and wrote files."""
    script = tmp_path / "ddp_train.py"
    ckpt = tmp_path / "ddp.pt"
    cfg = {k: v for k, v in config(tiny["vocab"]).items() if k != "vocab_size"}
    script.write_text(textwrap.dedent(DDP_SCRIPT).format(root=str(ROOT), folder=str(tiny["data"].image_dir.parent),
                                                         size=SIZE, config=cfg, ckpt=str(ckpt)))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COURSE_FAST": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)]
    proc = run_process_group(command, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    match = re.search(r"replicas identical: (\w+) world 2 running statistics (\d+)", proc.stdout)
    assert match and int(match.group(2)) > 0, proc.stdout[-2000:]
    assert match.group(1) == "True", "the ranks' models differ after an epoch"
    # rank 0: the checkpoint and its best copy, one BLEU evaluation; rank 1: nothing
    assert "writes and evaluations per rank: [[2, 1], [0, 0]]" in proc.stdout, proc.stdout[-2000:]
    assert proc.stdout.count("epoch 1/1:") == 1  # only rank 0 prints
    assert load_checkpoint(ckpt)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.best.pt", "ddp.pt", "ddp_train.py"]


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


def test_autocast_is_guarded_where_torch_lacks_it(monkeypatch):
    """Apple's MPS has autocast only from torch 2.5 (the requirements allow 2.1): train in float32 there."""
    import course_utils.captioning.train as train

    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda device_type: device_type != "mps", raising=False)
    autocast, scaler = train.mixed_precision(torch.device("mps"))
    assert not autocast._enabled and not scaler.is_enabled()
    monkeypatch.delattr(torch.amp, "is_autocast_available", raising=False)  # torch < 2.4 has no such function
    assert not train.autocast_available("mps") and train.autocast_available("cuda")
    autocast, scaler = train.mixed_precision(torch.device("mps"))
    with autocast:  # a switched-off context that every torch accepts
        assert not torch.is_autocast_enabled()
    assert scaler.scale(torch.ones(())) == 1  # switched off: the loss goes through unchanged


def test_resume_from_a_checkpoint_with_early_stopping_counters(tiny, tmp_path):
    """Checkpoints written before the shared EarlyStopping held a "trainer" dict: they still resume."""
    from course_utils.captioning.checkpoint import save_checkpoint

    ckpt = tmp_path / "old.pt"
    cfg = dict(batch_size=8, bleu_images=0, progress=False, device="cpu", patience=1, lr=1e-9)
    fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"],
        TrainConfig(epochs=1, checkpoint=str(ckpt), **cfg), log=quiet)  # fmt: skip
    contents = load_checkpoint(ckpt)
    contents.pop("format"), contents.pop("early_stopping")
    save_checkpoint(ckpt, **contents, trainer={"best_val_loss": contents["history"]["val_loss"][0], "bad_epochs": 0,
                                               "best_epoch": 1})  # fmt: skip
    lines = []
    history = fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=5, **cfg),
                  resume=ckpt, log=lines.append)  # fmt: skip
    assert len(history["val_loss"]) == 2  # a learning rate of 1e-9 does not improve: stop after one more epoch
    assert any("early stopping" in line and "best: epoch 1" in line for line in lines)


def test_placement_joins_and_leaves_the_process_group(monkeypatch):
    """Under torchrun (RANK, WORLD_SIZE set), fit's placement joins the group and leaves it at the end,
    unless the caller had joined it (then it is the caller's to destroy)."""
    from course_utils.captioning import distributed

    calls = []
    joined = {"now": False}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: joined["now"])
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append(("destroy",)))
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append(("barrier",)))
    monkeypatch.setenv("RANK", "1"), monkeypatch.setenv("WORLD_SIZE", "2"), monkeypatch.setenv("LOCAL_RANK", "1")
    with distributed.placement("cpu") as place:
        assert (place.rank, place.world_size, place.is_main, place.distributed) == (1, 2, False, True)
        assert calls == [("init", "gloo")]
    assert calls == [("init", "gloo"), ("barrier",), ("destroy",)]  # every rank leaves at once
    joined["now"] = True
    calls.clear()
    with distributed.placement("cpu"):
        pass
    assert calls == []
    monkeypatch.setenv("WORLD_SIZE", "1"), monkeypatch.setenv("RANK", "0")
    with distributed.placement("cpu") as place:
        assert place.is_main and not place.distributed
    assert calls == []


def test_fit_gives_the_callers_random_state_back(tiny):
    model = model_for(tiny["vocab"])
    torch.manual_seed(11)
    expected = torch.rand(3)
    torch.manual_seed(11)
    cfg = TrainConfig(epochs=1, batch_size=8, bleu_images=0, progress=False, device="cpu", seed=4)
    fit(model, tiny["train"], tiny["val"], tiny["vocab"], cfg, log=quiet)
    torch.testing.assert_close(torch.rand(3), expected)


def test_resume_without_gpu_from_a_two_gpu_checkpoint(tiny, tmp_path):
    """A checkpoint written on Kaggle's two T4s (one CUDA random state per GPU, as the kit saved them
    before) resumes on this GPU-less machine with one line saying dropout will differ."""
    from course_utils.captioning.checkpoint import save_checkpoint

    ckpt = tmp_path / "t4x2.pt"
    cfg = dict(batch_size=8, bleu_images=0, progress=False, device="cpu")
    fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"],
        TrainConfig(epochs=1, checkpoint=str(ckpt), **cfg), log=quiet)  # fmt: skip
    contents = load_checkpoint(ckpt)
    contents.pop("format")
    contents["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]
    save_checkpoint(ckpt, **contents)
    lines = []
    history = fit(model_for(tiny["vocab"]), tiny["train"], tiny["val"], tiny["vocab"], TrainConfig(epochs=2, **cfg),
                  resume=ckpt, log=lines.append)  # fmt: skip
    assert len(history["val_loss"]) == 2
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and "from cuda, this run is on cpu" in notes[0]
