"""The checks of notebook 07 (caption data): right answers pass, each kind of mistake
fails with a message that says what is wrong."""

import re

import pytest
import torch

from course_utils.checks import CheckError, check_padded_batch, check_same_output, check_vocabulary

SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]
CAPTIONS = [["a", "red", "circle"], ["a", "blue", "square"], ["a", "red", "square"], ["one", "dog"]]


def split_words(text):
    return text.lower().split()


# --------------------------------------------------------------------------- check_same_output
def test_same_output_passes(capsys):
    check_same_output(split_words, lambda t: t.lower().split(), [("A Dog",), ("two  cats",)], name="split")
    assert "split: correct" in capsys.readouterr().out


def test_same_output_names_case_and_position():
    def wrong(text):
        return text.split()  # forgets to lowercase

    with pytest.raises(CheckError, match=r"case 2 of 2.*position 0: 'Two' instead of 'two'"):
        check_same_output(wrong, split_words, [("a dog",), ("Two cats",)], name="split")


def test_same_output_reports_length_and_type():
    with pytest.raises(CheckError, match="2 items instead of 3"):
        check_same_output(lambda t: t.split()[:2], split_words, [("a b c",)])
    with pytest.raises(CheckError, match="returned a str, expected a list"):
        check_same_output(lambda t: t, split_words, [("a b",)])
    with pytest.raises(CheckError, match="forget to `return`"):
        check_same_output(lambda t: None, split_words, [("a b",)])


def test_same_output_compares_tensors_and_tuples_as_lists():
    check_same_output(lambda n: torch.arange(n), lambda n: list(range(n)), [(3,)], name="ids")
    check_same_output(lambda n: (n, [n]), lambda n: [n, [n]], [(1,)], name="pair")
    with pytest.raises(CheckError, match="position 2: 3 instead of 2"):
        check_same_output(lambda n: torch.tensor([0, 1, 3]), lambda n: list(range(n)), [(3,)])


# --------------------------------------------------------------------------- check_vocabulary
def test_vocabulary_passes_in_any_word_order(capsys):
    check_vocabulary(SPECIALS + ["square", "red", "a"], CAPTIONS, min_freq=2)
    check_vocabulary(SPECIALS + ["a", "red", "square", "blue", "circle", "one", "dog"], CAPTIONS, min_freq=1)
    assert capsys.readouterr().out.count("correct") == 2


@pytest.mark.parametrize(
    "itos, message",
    [
        (["<start>", "<pad>", "<end>", "<unk>", "a", "red", "square"], "special tokens .* in that order"),
        (SPECIALS + ["a", "red"], r"1 word\(s\) with count >= 2 are missing, e.g. 'square' \(2 times\)"),
        (SPECIALS + ["a", "red", "square", "dog"], r"'dog' appears 1 time\(s\).*count >= 2"),
        (SPECIALS + ["a", "red", "square", "zebra"], r"'zebra' appears 0 time\(s\)"),
        (SPECIALS + ["a", "red", "square", "red"], "'red' appears twice .*id 7"),
        ("a red square", "expected a list of words"),
    ],
)
def test_vocabulary_mistakes(itos, message):
    with pytest.raises(CheckError, match=message):
        check_vocabulary(itos, CAPTIONS, min_freq=2)


# --------------------------------------------------------------------------- check_padded_batch
SEQS = [[1, 5, 6, 2], [1, 7, 2], [1, 2]]
GOOD = [[1, 5, 6, 2], [1, 7, 2, 0], [1, 2, 0, 0]]
LENGTHS = torch.tensor([4, 3, 2])


def test_padded_batch_passes(capsys):
    check_padded_batch(torch.tensor(GOOD), LENGTHS, SEQS, name="collate")
    assert "collate: correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    "captions, lengths, message",
    [
        (GOOD, LENGTHS, "captions is a list"),
        (torch.tensor(GOOD).float(), LENGTHS, "dtype torch.float32"),
        (torch.tensor(GOOD), LENGTHS.int(), "lengths has dtype torch.int32"),
        (torch.nn.functional.pad(torch.tensor(GOOD), (0, 1)), LENGTHS, r"shape \(3, 5\), expected \(3, 4\)"),
        (torch.tensor(GOOD), torch.tensor([4, 4, 4]), r"lengths \[4, 4, 4\]"),
        (torch.tensor([[1, 5, 6, 2], [0, 1, 7, 2], [1, 2, 0, 0]]), LENGTHS, "row 1 starts with"),
        (torch.tensor([[1, 5, 6, 2], [1, 7, 2, 9], [1, 2, 0, 0]]), LENGTHS, "must be 0"),
    ],
)
def test_padded_batch_mistakes(captions, lengths, message):
    with pytest.raises(CheckError, match=message):
        check_padded_batch(captions, lengths, SEQS)


def test_messages_are_single_sentences_for_students():
    """No traceback noise: the message itself names the problem."""
    with pytest.raises(CheckError) as info:
        check_padded_batch(torch.zeros(3, 4, dtype=torch.long), LENGTHS, SEQS, name="collate")
    assert re.match(r"collate: row 0 starts with \[0, 0, 0, 0\]", str(info.value))
