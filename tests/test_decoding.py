"""Greedy decoding, the reference beam search and its fast path, on small random models."""

import pytest
import torch

from course_utils.captioning.attention import ShowAttendTell
from course_utils.captioning.beam_fast import fast_beam_search, log_normalizer, row_topk
from course_utils.captioning.decoding import Caption, beam_search, decode, greedy_decode
from course_utils.captioning.show_tell import ShowTell

VOCAB, ENC, P, START, END = 20, 12, 9, 1, 2


def make(kind, seed=0, end_bias=0.0):
    torch.manual_seed(seed)
    if kind == "attention":
        m = ShowAttendTell(VOCAB, encoder_dim=ENC, embed_dim=8, hidden_dim=16, attention_dim=10)
    else:
        m = ShowTell(VOCAB, encoder_dim=ENC, embed_dim=8, hidden_dim=16)
    with torch.no_grad():
        m.fc.bias[END] += end_bias  # > 0: captions end early; << 0: they never end
    return m.eval()


class ToyDecoder(torch.nn.Module):
    """A decoder with varied behaviour (random untrained LSTMs almost always, or never, end at once):
    next-word scores from a random table indexed by the previous word plus an image bias, and an
    ``<end>`` score that grows with time at an image-dependent rate. Its "attention" is a softmax
    of the image bias, so it has the shape of real attention weights."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(VOCAB, VOCAB, generator=g) * 2
        self.proj = torch.randn(ENC, VOCAB, generator=g)
        self.rate = torch.randn(ENC, generator=g)

    def init_state(self, features):
        mean = features.mean(1)  # (batch, ENC)
        return mean @ self.proj, torch.sigmoid(mean @ self.rate)[:, None] * 3, torch.zeros(len(features), 1)

    def step(self, state, words):
        bias, rate, t = state
        logits = self.table[words] + bias
        logits[:, END] = logits[:, END] + rate[:, 0] * t[:, 0] - 6
        return logits, (bias, rate, t + 1), torch.softmax(bias[:, :P], dim=1)


def features(n=6, seed=1):
    return torch.randn(n, P, ENC, generator=torch.Generator().manual_seed(seed))


def model(kind, end_bias=0.0):
    return ToyDecoder(seed=int(end_bias)) if kind == "toy" else make(kind, end_bias=end_bias)


SEARCHES = pytest.mark.parametrize("search", [beam_search, fast_beam_search], ids=["reference", "fast"])


@SEARCHES
@pytest.mark.parametrize("kind", ["attention", "show_tell", "toy"])
@pytest.mark.parametrize("end_bias", [0.0, 2.0])
def test_beam_one_is_greedy(kind, end_bias, search):
    m, f = model(kind, end_bias), features(12)
    greedy = greedy_decode(m, f, START, END, max_len=8)
    beam = search(m, f, START, END, beam_size=1, max_len=8)
    assert [c.ids for c in beam] == [c.ids for c in greedy]
    assert [c.finished for c in beam] == [c.finished for c in greedy]
    for b, g in zip(beam, greedy):
        assert b.score == pytest.approx(g.score, abs=1e-5)
        if kind != "show_tell":
            torch.testing.assert_close(b.alphas, g.alphas)
    if kind == "toy":
        assert len({len(c.ids) for c in greedy}) > 2, "the toy decoder should give captions of various lengths"


@SEARCHES
@pytest.mark.parametrize("kind", ["attention", "show_tell", "toy"])
@pytest.mark.parametrize("beam_size", [2, 4])
def test_batched_beam_search_equals_image_by_image(kind, beam_size, search):
    m, f = model(kind), features(9, seed=4)
    batched = search(m, f, START, END, beam_size=beam_size, max_len=10)
    single = [search(m, f[i : i + 1], START, END, beam_size=beam_size, max_len=10)[0] for i in range(len(f))]
    assert [c.ids for c in batched] == [c.ids for c in single]
    for b, s in zip(batched, single):
        assert b.score == pytest.approx(s.score, abs=1e-4)
        assert b.finished == s.finished
    if kind == "toy":  # images leave the batch at different steps
        assert len({len(c.ids) for c in batched}) > 2 and any(c.finished for c in batched)


def test_beam_search_improves_the_score():
    m, f = ToyDecoder(seed=5), features(8, seed=6)
    greedy = greedy_decode(m, f, START, END, max_len=10)
    beam = beam_search(m, f, START, END, beam_size=5, max_len=10)
    finished = [(g, b) for g, b in zip(greedy, beam) if g.finished and b.finished]
    assert finished
    assert all(b.score >= g.score - 1e-6 for g, b in finished)


def test_alphas_one_row_per_word_summing_to_one():
    m, f = ToyDecoder(seed=1), features(5)
    for caps in (greedy_decode(m, f, START, END, max_len=7), beam_search(m, f, START, END, 3, max_len=7)):
        for c in caps:
            assert isinstance(c, Caption)
            assert c.alphas.shape == (len(c.ids), P)
            if c.ids:
                torch.testing.assert_close(c.alphas.sum(1), torch.ones(len(c.ids)))
            assert END not in c.ids
    assert all(c.alphas is None for c in greedy_decode(make("show_tell"), f, START, END, max_len=5))


@SEARCHES
def test_no_beam_ends_gives_the_best_unfinished_caption(search):
    m, f = make("attention", end_bias=-1e4), features(3)
    for caps in (search(m, f, START, END, beam_size=3, max_len=6), greedy_decode(m, f, START, END, max_len=6)):
        assert len(caps) == 3
        for c in caps:
            assert not c.finished
            assert len(c.ids) == 6 and END not in c.ids
            assert c.alphas.shape == (6, P)


@SEARCHES
def test_max_len_and_immediate_end(search):
    m, f = make("attention", end_bias=1e4), features(2)  # <end> first, always
    for caps in (greedy_decode(m, f, START, END, max_len=5), search(m, f, START, END, 3, max_len=5)):
        assert all(c.ids == [] and c.finished for c in caps)
        assert all(c.alphas.shape == (0, P) for c in caps)


def test_length_penalty_prefers_longer_captions():
    c_short = Caption([5], None, -2.0, True)  # 2 tokens
    c_long = Caption([5, 6, 7], None, -3.0, True)  # 4 tokens
    assert c_short.normalized_score(0.0) > c_long.normalized_score(0.0)
    assert c_long.normalized_score(1.0) > c_short.normalized_score(1.0)
    m, f = ToyDecoder(seed=2), features(12, seed=2)
    raw = beam_search(m, f, START, END, 4, max_len=10, length_penalty=0.0)
    norm = beam_search(m, f, START, END, 4, max_len=10, length_penalty=1.0)
    assert sum(len(c.ids) for c in norm) >= sum(len(c.ids) for c in raw)


def test_decode_dispatches_and_validates():
    m, f = make("attention"), features(2)
    assert [c.ids for c in decode(m, f, START, END, beam_size=1, max_len=4)] == \
        [c.ids for c in greedy_decode(m, f, START, END, max_len=4)]  # fmt: skip
    assert [c.ids for c in decode(m, f, START, END, beam_size=3, max_len=4)] == \
        [c.ids for c in beam_search(m, f, START, END, beam_size=3, max_len=4)]  # fmt: skip
    for search in (beam_search, fast_beam_search):
        with pytest.raises(ValueError, match="beam_size"):
            search(m, f, START, END, beam_size=0)


@pytest.mark.parametrize("kind", ["attention", "show_tell", "toy", "large_vocab"])
@pytest.mark.parametrize("beam_size", [2, 3, 5])
@pytest.mark.parametrize("end_bias", [0.0, 2.0])
def test_fast_path_gives_the_reference_captions_and_scores(kind, beam_size, end_bias):
    if kind == "large_vocab":  # enough rows and words for row_topk's two-stage search
        torch.manual_seed(int(end_bias))
        m = ShowAttendTell(3000, encoder_dim=ENC, embed_dim=8, hidden_dim=16, attention_dim=10).eval()
        with torch.no_grad():
            m.fc.weight.mul_(20)  # sharper distributions: captions that end at various steps
            m.fc.bias[END] += end_bias
    else:
        m = model(kind, end_bias)
    f = features(12, seed=7)
    reference = beam_search(m, f, START, END, beam_size=beam_size, max_len=9)
    fast = fast_beam_search(m, f, START, END, beam_size=beam_size, max_len=9)
    assert [c.ids for c in fast] == [c.ids for c in reference]
    assert [c.finished for c in fast] == [c.finished for c in reference]
    for a, b in zip(fast, reference):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        if a.alphas is not None:
            torch.testing.assert_close(a.alphas, b.alphas)
    assert all(isinstance(c.score, float) for c in fast)


def test_no_float64_anywhere():
    """Apple's MPS backend rejects float64: no tensor made while decoding may use it."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    dtypes = set()

    class RecordDtypes(TorchDispatchMode):  # sees the result of every tensor operation
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            dtypes.update(t.dtype for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))
            return out

    m, f = make("attention", end_bias=2.0), features(4)
    with RecordDtypes():
        greedy_decode(m, f, START, END, max_len=5)
        beam_search(m, f, START, END, 3, max_len=5)
        fast_beam_search(m, f, START, END, 3, max_len=5)
    assert torch.float32 in dtypes and torch.float64 not in dtypes


@pytest.mark.parametrize(
    "rows, vocab_size, k", [(192, 12509, 3), (20, 3000, 5), (40, 640, 1), (3, 12509, 3), (30, 52, 3)]
)
def test_row_topk_equals_topk(rows, vocab_size, k):
    logits = torch.randn(rows, vocab_size, generator=torch.Generator().manual_seed(rows))
    values, words = row_topk(logits, k)
    ref_values, ref_words = logits.topk(k, dim=1)
    assert torch.equal(values, ref_values) and torch.equal(words, ref_words)


def test_row_topk_finds_words_in_the_last_partial_block_and_ties():
    logits = torch.zeros(32, 1000)  # 7 blocks of 128 words and a partial block of 104
    logits[:, 999] = 5.0  # the best word sits in the partial block
    logits[:, 3] = logits[:, 500] = 2.0  # a tie for second place, in two different blocks
    values, words = row_topk(logits, 3)
    assert values[:, :3].tolist() == [[5.0, 2.0, 2.0]] * 32
    assert words[:, 0].eq(999).all() and set(words[0, 1:].tolist()) == {3, 500}


def test_log_normalizer_is_logsumexp():
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(0)) * 30  # large: exp would overflow alone
    best = logits.max(dim=1, keepdim=True).values
    torch.testing.assert_close(log_normalizer(logits.clone(), best), torch.logsumexp(logits, dim=1, keepdim=True))


def test_trace_records_every_step_and_draws_the_tree():
    import matplotlib

    matplotlib.use("Agg")
    from course_utils.captioning.beam_tree import plot_beam_tree

    m, f = ToyDecoder(seed=2), features(3)
    steps = []
    traced = beam_search(m, f, START, END, beam_size=3, max_len=7, trace=steps)
    assert [c.ids for c in traced] == [c.ids for c in beam_search(m, f, START, END, beam_size=3, max_len=7)]
    assert 1 <= len(steps) <= 7
    first = steps[0]
    assert first["log_probs"].shape == (3, 3, VOCAB) and first["top"].shape == first["parents"].shape == (3, 3)
    assert (first["parents"] == 0).all()  # the first step extends beam 0 only
    torch.testing.assert_close(first["top"], first["log_probs"][:, 0].topk(3, dim=1).values)
    fig = plot_beam_tree(steps, [f"w{i}" for i in range(VOCAB)], END, image=1)
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert "<start>\n0.00" in labels and len(labels) > 10
    matplotlib.pyplot.close(fig)
