"""``python -m course_utils bench`` at its smallest size, and the pieces it relies on (no timing assertions)."""

import re

import torch

from course_utils.__main__ import main
from course_utils.captioning.attention import ShowAttendTell
from course_utils.captioning.train import caption_loss
from course_utils.tools.bench_data import PaddedDecoder, padded_loss
from course_utils.tools.bench_timing import side_by_side


def _batch(vocab_size: int = 30, lengths=(7, 4, 5, 3)):
    """Features ``(4, 9, 16)``, captions ``(4, max_len)`` padded with 0, lengths ``(4,)``."""
    g = torch.Generator().manual_seed(0)
    lens = torch.tensor(lengths)
    captions = torch.randint(4, vocab_size, (len(lengths), int(lens.max())), generator=g)
    captions[torch.arange(captions.shape[1])[None] >= lens[:, None]] = 0
    return torch.randn(len(lengths), 9, 16, generator=g), captions, lens


def test_padded_decoder_gives_the_kits_loss_and_gradients():
    kit = ShowAttendTell(30, encoder_dim=16, embed_dim=8, hidden_dim=12, attention_dim=10, dropout=0.0)
    base = PaddedDecoder(30, encoder_dim=16, embed_dim=8, hidden_dim=12, attention_dim=10, dropout=0.0)
    base.load_state_dict(kit.state_dict())
    features, captions, lengths = _batch()
    out_kit, out_base = kit(features, captions, lengths), base(features, captions, lengths)
    assert out_base.logits.shape == (4 * 6, 30)  # every position of the batch, padding included
    assert out_kit.logits.shape == (int((lengths - 1).sum()), 30)  # real tokens only
    assert torch.allclose(out_kit.alphas, out_base.alphas, atol=1e-6)  # zero on padded steps in both
    loss_kit, loss_base = caption_loss(out_kit)[0], padded_loss(out_base)
    assert torch.allclose(loss_kit, loss_base, atol=1e-5)
    loss_kit.backward()
    loss_base.backward()
    for (name, p), q in zip(kit.named_parameters(), base.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5), name


def test_side_by_side_alternates_and_averages():
    calls = []
    sides = {"kit": (lambda: calls.append("k"), 2, lambda: calls.append("kw")),
             "baseline": (lambda: calls.append("b"), 1, lambda: calls.append("bw"))}  # fmt: skip
    seconds = side_by_side(sides, rounds=2, device=torch.device("cpu"))
    assert calls == ["kw", "k", "k", "bw", "b"] * 2
    assert set(seconds) == {"kit", "baseline"} and all(s >= 0 for s in seconds.values())


def test_bench_smoke_prints_every_measure_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "benchmarks.md"
    code = main(["bench", "--smoke", "--data", str(tmp_path / "data"), "--out", str(out), "--vocab-size", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    number = r"[0-9]+(\.[0-9]+)?"
    for name in ("feature_cache_speedup", "decoder_speedup", "beam_batch_speedup", "image_store_speedup",
                 "peak_memory_mb"):  # fmt: skip
        assert re.search(rf"^{name}: {number}$", printed, re.M), f"no '{name}: <number>' line in:\n{printed}"
    assert re.search(r"^notebook_suite_seconds: skipped", printed, re.M)
    if not torch.cuda.is_available():
        assert re.search(r"^amp_channels_last_speedup: skipped", printed, re.M)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Benchmarks") and "python -m course_utils bench --smoke" in text
    for name in ("feature_cache_speedup", "decoder_speedup", "beam_batch_speedup", "image_store_speedup"):
        assert f"| `{name}` | **" in text
    assert not list(tmp_path.glob("*.tmp")), "the report is written atomically"
