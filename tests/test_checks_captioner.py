"""The checks of notebooks 08-10 (captioner): right answers pass, each kind of mistake
fails with a message that says what is wrong."""

import pytest
import torch
import torch.nn as nn

from course_utils.captioning.attention import Attention
from course_utils.captioning.caption_checks import check_attention_weights, check_caption_steps
from course_utils.checks import CheckError, load_student_weights


# --------------------------------------------------------------------------- check_attention_weights
def test_attention_weights_pass(capsys):
    alpha = torch.softmax(torch.randn(2, 49), dim=1)
    check_attention_weights(alpha, shape=(2, 49), name="alpha")
    assert "alpha: correct" in capsys.readouterr().out


def test_attention_weights_per_step_pass():
    check_attention_weights(torch.softmax(torch.randn(3, 5, 9), dim=-1), shape=(3, 5, 9))


def test_attention_weights_wrong_shape():
    with pytest.raises(CheckError, match=r"shape \(2, 48\), expected \(2, 49\)"):
        check_attention_weights(torch.softmax(torch.randn(2, 48), dim=1), shape=(2, 49))


def test_attention_weights_softmax_over_batch_is_named():
    alpha = torch.softmax(torch.randn(4, 49), dim=0)  # the classic mistake
    with pytest.raises(CheckError, match="wrong dimension"):
        check_attention_weights(alpha)


def test_attention_weights_unnormalised_row_is_named():
    alpha = torch.softmax(torch.randn(3, 6), dim=1)
    alpha[2] *= 0.5
    with pytest.raises(CheckError, match=r"row \(2,\) sums to 0\.5, expected 1 \(1 of 3 rows off\)"):
        check_attention_weights(alpha)


def test_attention_weights_negative_and_nan():
    alpha = torch.tensor([[1.5, -0.5], [0.5, 0.5]])
    with pytest.raises(CheckError, match=r"negative"):
        check_attention_weights(alpha)
    with pytest.raises(CheckError, match="NaN"):
        check_attention_weights(torch.tensor([[float("nan"), 1.0]]))


def test_attention_weights_none_is_explained():
    with pytest.raises(CheckError, match="return"):
        check_attention_weights(None)


# --------------------------------------------------------------------------- load_student_weights
class Mine(nn.Module):
    def __init__(self, hidden_dim=8):
        super().__init__()
        self.feature_proj = nn.Linear(16, 4)
        self.hidden_proj = nn.Linear(hidden_dim, 4)
        self.score = nn.Linear(4, 1)


def test_load_student_weights_copies_every_parameter():
    mine, ref = Mine(), Attention(16, 8, 4)
    load_student_weights(mine, ref)
    for (k, a), (k2, b) in zip(mine.state_dict().items(), ref.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_load_student_weights_names_missing_and_unexpected():
    mine = Mine()
    mine.scorer = mine.score
    del mine.score
    with pytest.raises(CheckError, match=r"missing score\.bias, score\.weight \| unexpected scorer\.bias"):
        load_student_weights(mine, Attention(16, 8, 4))


def test_load_student_weights_names_shapes():
    with pytest.raises(CheckError, match=r"hidden_proj\.weight \(4, 6\) instead of \(4, 8\)"):
        load_student_weights(Mine(hidden_dim=6), Attention(16, 8, 4))


def test_load_student_weights_refuses_non_module():
    with pytest.raises(CheckError, match="expected a torch.nn.Module, got function"):
        load_student_weights(lambda x: x, Attention(16, 8, 4))


# --------------------------------------------------------------------------- check_caption_steps
def _steps(lengths, width=3, seed=0):
    """Per-step values (batch, max(lengths) - 1, width), zero after each caption's end."""
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(len(lengths), max(lengths) - 1, width, generator=g)
    for i, n in enumerate(lengths):
        values[i, n - 1 :] = 0
    return values, torch.tensor(lengths)


def test_caption_steps_pass(capsys):
    values, lengths = _steps([4, 6, 2])
    check_caption_steps(values.clone(), values, lengths, name="scores")
    assert "scores: correct" in capsys.readouterr().out


def test_caption_steps_rows_in_sorted_order_are_named():
    values, lengths = _steps([4, 6, 2])
    with pytest.raises(CheckError, match="input's order"):
        check_caption_steps(values[[1, 0, 2]], values, lengths)


def test_caption_steps_values_after_the_end_are_named():
    values, lengths = _steps([4, 6, 2])
    wrong = values.clone()
    wrong[2, 1] = 0.5  # caption 2 has one step
    with pytest.raises(CheckError, match="caption 2 has ended after 1 steps"):
        check_caption_steps(wrong, values, lengths)


def test_caption_steps_first_wrong_step_is_named():
    values, lengths = _steps([4, 6, 2])
    wrong = values.clone()
    wrong[1, 3] += 1.0
    with pytest.raises(CheckError, match="caption 1 at step 3"):
        check_caption_steps(wrong, values, lengths)
    with pytest.raises(CheckError, match=r"shape"):
        check_caption_steps(values[:, :-1], values, lengths)


# --------------------------------------------------------------------------- check_captions (notebook 10)
def _captions():
    from course_utils.captioning.outputs import Caption

    alphas = torch.softmax(torch.randn(3, 4), dim=1)
    return Caption, [Caption([5, 6, 7], alphas, -2.5, True), Caption([4, 4], alphas[:2], -6.0, False)]


def test_captions_pass(capsys):
    from course_utils.captioning.caption_checks import check_captions

    Caption, want = _captions()
    check_captions([Caption(list(c.ids), c.alphas.clone(), c.score + 1e-6, c.finished) for c in want], want,
                   name="beam")
    assert "beam: correct" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (lambda C, c: C(c.ids[:2], c.alphas[:2], c.score + 1.0, True), r"image 0: word ids \[5, 6\].*beam's score"),
    (lambda C, c: C(c.ids[:2], c.alphas[:2], c.score - 1.0, True), r"image 0: .*k x vocab_size"),
    (lambda C, c: C(c.ids + [2], c.alphas, c.score, True), "leave out <start> and <end>"),
    (lambda C, c: C(c.ids, c.alphas, c.score, False), "finished=False, expected True"),
    (lambda C, c: C(c.ids, c.alphas, c.score - 0.5, True), r"score -3\.00000, expected -2\.50000: the sum"),
    (lambda C, c: C(c.ids, c.alphas.roll(1, dims=0), c.score, True), "alphas, one row per word"),
])
def test_captions_name_what_differs(change, message):
    from course_utils.captioning.caption_checks import check_captions

    Caption, want = _captions()
    with pytest.raises(CheckError, match=message):
        check_captions([change(Caption, want[0]), want[1]], want)


def test_captions_unfinished_length_and_count_are_named():
    from course_utils.captioning.caption_checks import check_captions

    Caption, want = _captions()
    with pytest.raises(CheckError, match="max_len = 2 words"):
        check_captions([want[0], Caption([4], want[1].alphas[:1], -3.0, False)], want)
    with pytest.raises(CheckError, match="a list of 2 captions"):
        check_captions(want[:1], want)
    with pytest.raises(CheckError, match=r"return Caption\(ids, alphas, score, finished\)"):
        check_captions([[5, 6, 7], want[1]], want)
