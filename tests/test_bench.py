"""``python -m course_utils bench`` at its smallest size, and the pieces it relies on (no timing assertions)."""

import argparse
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image

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


def test_record_products_sees_forward_and_backward_and_replay_does_the_same_arithmetic():
    from course_utils.tools.bench_timing import count_flops, materialize, record_products, replay_products

    torch.manual_seed(0)
    layer, cell = torch.nn.Linear(24, 16), torch.nn.LSTMCell(16, 8)
    x = torch.randn(5, 24)

    def three_words():  # one weight used at every word, as in the decoder
        h = c = torch.zeros(5, 8)
        for _ in range(3):
            h, c = cell(layer(x), (h, c))
        h.sum().backward()

    calls = record_products(three_words)
    ops = Counter(func.__name__.split(".")[0] for func, _, _ in calls)
    # forward: 3 words x (Linear, LSTM input, LSTM hidden); backward: the Linear's weight (x needs no
    # gradient), the LSTM input's weight and input, the hidden weight, and the hidden input after word 1
    assert ops == {"addmm": 9, "mm": 3 + 6 + 3 + 2}, ops
    assert count_flops(replay_products(calls)) == count_flops(three_words) > 0
    # the Linear's weight was one tensor at the three words: replayed, it is one buffer again
    weight_ptrs = {args[2].untyped_storage().data_ptr() for func, args, _ in materialize(calls)
                   if func.__name__.startswith("addmm") and args[2].shape == (24, 16)}  # fmt: skip
    assert len(weight_ptrs) == 1
    assert all(not isinstance(a, torch.Tensor) or a.abs().sum() > 0
               for _, args, _ in materialize(calls) for a in args)  # random numbers, not empty memory # fmt: skip


def test_matmul_share_divides_by_the_yardstick_of_the_same_rounds():
    from course_utils.tools.bench import matmul_share

    cache = {"gflops": 44.0, "products_gflops": 60.0, "matmul_gflops": 100.0, "products": 298, "rows": 32}
    share = matmul_share(cache)
    assert share["value"] == pytest.approx(0.44) and share["products_share"] == pytest.approx(0.60)
    assert "bound 0.60: its 298 matrix products alone, replayed, 60 GFLOP/s" in share["note"]


def test_bench_smoke_prints_every_measure_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "benchmarks.md"
    code = main(["bench", "--smoke", "--data", str(tmp_path / "data"), "--out", str(out), "--vocab-size", "0"])
    assert code == 0
    printed = capsys.readouterr().out
    number = r"[0-9]+(\.[0-9]+)?"
    for name in ("feature_cache_speedup", "decoder_speedup", "beam_batch_speedup", "image_store_speedup",
                 "peak_memory_mb"):  # fmt: skip
        assert re.search(rf"^{name}: {number}$", printed, re.M), f"no '{name}: <number>' line in:\n{printed}"
    assert re.search(rf"^decoder_matmul_share: {number}$", printed, re.M)
    assert re.search(r"\(bound [0-9.]+: its [0-9]+ matrix products alone, replayed, [0-9]+ GFLOP/s\)", printed)
    assert re.search(r"^  kit .* bound \([0-9]+ \+ [0-9.]+\) / [0-9.]+ = [0-9.]+", printed, re.M)  # feature cache
    assert re.search(r"^notebook_suite_seconds: skipped", printed, re.M)
    if not torch.cuda.is_available():
        assert re.search(r"^amp_channels_last_speedup: skipped", printed, re.M)
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!-- bench:start -->\n# Benchmarks") and "python -m course_utils bench --smoke" in text
    for name in ("feature_cache_speedup", "decoder_speedup", "beam_batch_speedup", "image_store_speedup"):
        assert f"| `{name}` | **" in text
    assert not list(tmp_path.glob("*.tmp")), "the report is written atomically"


def test_quick_runs_never_write_the_full_report():
    from course_utils.tools.bench import FULL_REPORT, report_path

    args = argparse.Namespace(out=None)
    assert report_path(args, "full") == Path(FULL_REPORT)
    assert report_path(args, "quick").parts[:2] == ("runs", "bench")
    assert report_path(args, "smoke", kind="scale-").name == "benchmarks-scale-smoke.md"
    assert report_path(argparse.Namespace(out="x.md"), "quick") == Path("x.md")


def test_sections_of_the_report_are_replaced_one_at_a_time(tmp_path):
    from course_utils.tools.bench_report import write_section

    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\nold full run\n", encoding="utf-8")  # written before sections existed
    write_section(path, "scale", "## scale one")
    write_section(path, "scale", "## scale two")
    text = path.read_text(encoding="utf-8")
    assert "old full run" in text and "scale two" in text and "scale one" not in text
    write_section(path, "bench", "# Benchmarks\nnew full run")
    text = path.read_text(encoding="utf-8")
    assert "new full run" in text and "old full run" not in text and "scale two" in text


def test_stand_in_flickr8k_has_flickr8ks_vocabulary():
    from course_utils.sequence.text import tokenize
    from course_utils.tools.bench_flickr import make_captions

    captions = make_captions(40455)  # Flickr8k: 8,091 images x 5
    counts = Counter(w for c in captions for w in tokenize(c))
    lengths = [len(tokenize(c)) for c in captions]
    assert 8000 <= len(counts) <= 9000 and 4500 <= sum(v >= 2 for v in counts.values()) <= 5500
    assert min(lengths) == 1 and max(lengths) == 37 and 10.5 <= sum(lengths) / len(lengths) <= 11.5
    assert counts.most_common(1)[0][0] == "a" and 0.12 < counts["a"] / sum(lengths) < 0.16
    assert 0 < sum("," in c for c in captions) < 0.05 * len(captions) and any("'s " in c for c in captions)


def test_stand_in_flickr8k_is_read_by_the_kaggle_loader(tmp_path):
    from course_utils.caption_data.formats import load_dataset
    from course_utils.tools.bench_flickr import first_images, make_flickr8k_like

    source = make_flickr8k_like(tmp_path / "all", 12)
    data = load_dataset(first_images(source, tmp_path / "first", 10))
    assert len(data.captions) == 10 and data.num_captions() == 50
    with Image.open(data.image_path(data.images()[0])) as image:
        assert image.size == (500, 375) and image.format == "JPEG"


def test_growth_says_linear_or_why():
    from course_utils.tools.bench_scale import growth

    base = {"images": 1000, "captions": 5000, "train_captions": 4000, "test_images": 100, "vocabulary": 1500,
            "load_vocab_seconds": 1.0, "feature_cache_seconds": 50.0, "train_epoch_seconds": 40.0,
            "greedy_seconds": 2.0, "beam3_seconds": 1.0}  # fmt: skip
    double = {**{k: 2 * v for k, v in base.items()}, "vocabulary": 2600, "train_epoch_seconds": 120.0,
              "greedy_seconds": 3.0, "load_vocab_seconds": 1.9, "beam3_seconds": 4.0}  # fmt: skip
    base = {**base, "load_vocab_seconds": 0.1}
    lines = growth({1000: base, 2000: double})
    assert lines["scale_growth_feature_cache"].startswith("linear (x1.00 per image")
    assert "vocabulary grew from 1500 to 2600" in lines["scale_growth_train_epoch"]
    # 2 s for 100 test images, 3 s for 200: 1 s paid once, then 100 images/s
    assert lines["scale_growth_greedy"] == ("x0.75 per test image from 1000 to 2000 images: linear with a fixed part, "
                                            "about 1 s (the scorers, the Java PTB tokenizer starting at each "
                                            "evaluation) plus 100.0 test images/s")  # fmt: skip
    assert lines["scale_growth_load_vocab"].endswith("under 2 s at every scale, too short to read a growth from")
    assert lines["scale_growth_beam3"].endswith("not explained by the sizes (see the load average of each scale)")


def test_the_benchmarks_own_threads_do_not_make_the_machine_busy():
    from course_utils.tools.bench_scale import busy

    loads = {1000: "load average: 1.22, 0.64, 0.29", 2000: "load average: 2.03, 1.78, 1.01"}
    assert busy(loads, 0.72, own_threads=2) == pytest.approx(0.72)  # its own 2 threads at the second scale
    assert busy(loads, 0.1, own_threads=1) == pytest.approx(1.03)  # one other core busy


@pytest.mark.slow
def test_bench_scale_smoke_prints_every_stage(tmp_path, capsys):
    out = tmp_path / "scale.md"
    assert main(["bench", "--scale", "--smoke", "--data", str(tmp_path / "data"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for n in (12, 24):
        for name in ("feature_cache_images_per_s", "decode_only_images_per_s", "encoder_only_images_per_s",
                     "feature_cache_overlap", "train_captions_per_s", "greedy_images_per_s", "beam3_images_per_s",
                     "peak_memory_mb"):  # fmt: skip
            assert re.search(rf"^scale_{name}_{n}: [0-9.]+$", printed, re.M), f"no scale_{name}_{n} in:\n{printed}"
    assert re.search(r"^scale_growth_train_epoch: ", printed, re.M)
    assert "## The real-data path at Flickr8k scale" in out.read_text(encoding="utf-8")


def test_bad_scales_get_one_error_line(capsys):
    assert main(["bench", "--scale", "--scales", "500,250"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "increasing numbers of images" in err[0]
