"""Word-level language model: loss ignores padding, training lowers perplexity, sampling obeys T."""

import math

import pytest
import torch

from course_utils.basics.networks import evaluating
from course_utils.caption_data.synth import sample_captions
from course_utils.sequence.language_model import (
    WordLM,
    apply_temperature,
    batches,
    encode_captions,
    evaluate_lm,
    lm_loss,
    sample,
    train_lm,
)
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary


@pytest.fixture(scope="module")
def data():
    caps = sample_captions(300, seed=3)
    vocab = Vocabulary.build([tokenize(c) for c in caps[:250]], min_freq=1)
    return vocab, encode_captions(caps[:250], vocab), encode_captions(caps[250:], vocab)


@pytest.fixture(scope="module")
def trained(data):
    """A small model trained for 2 epochs, shared by the sampling and scoring tests."""
    vocab, train, val = data
    torch.manual_seed(0)
    model = WordLM(len(vocab), 16, 32)
    train_lm(model, train, val, epochs=2, batch_size=32, lr=1e-2, verbose=False)
    return model


def test_apply_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0]])
    torch.testing.assert_close(apply_temperature(logits, 1.0), logits.softmax(-1))
    assert torch.equal(apply_temperature(logits, 0), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))

    def entropy(p):
        return -(p * p.log()).sum().item()

    assert entropy(apply_temperature(logits, 0.5)) < entropy(apply_temperature(logits, 1.0)) < entropy(
        apply_temperature(logits, 2.0))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, -1)


def test_encode_wraps_in_start_end(data):
    vocab, train, _ = data
    assert all(int(c[0]) == vocab.start_id and int(c[-1]) == vocab.end_id for c in train)


def test_loss_ignores_padding(data):
    vocab, train, _ = data
    torch.manual_seed(0)
    model = WordLM(len(vocab), 8, 16, dropout=0.0).eval()
    caption = train[0][None]  # (1, length)
    padded = torch.cat([caption, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    torch.testing.assert_close(lm_loss(model, caption), lm_loss(model, padded))


def test_batches_cover_everything_once(data):
    _, train, _ = data
    seen = sum(b.shape[0] for b in batches(train, 32, generator=torch.Generator().manual_seed(0)))
    assert seen == len(train)


def test_training_lowers_perplexity(data):
    vocab, train, val = data
    torch.manual_seed(0)
    model = WordLM(len(vocab), 16, 32)
    before = evaluate_lm(model, val)
    history = train_lm(model, train, val, epochs=2, batch_size=32, lr=1e-2, verbose=False)
    assert history["val_loss"][-1] < before - 0.5
    assert history["val_perplexity"][-1] == pytest.approx(math.exp(history["val_loss"][-1]))


def test_sampling(data, trained):
    vocab, model = data[0], trained
    greedy = sample(model, vocab, n=3, temperature=0, max_len=12)
    assert greedy[0] == greedy[1] == greedy[2]
    a = sample(model, vocab, n=4, temperature=1.0, generator=torch.Generator().manual_seed(1))
    b = sample(model, vocab, n=4, temperature=1.0, generator=torch.Generator().manual_seed(1))
    assert a == b and len(a) == 4
    assert all(len(s) <= 12 for s in sample(model, vocab, n=4, temperature=2.0, max_len=12))
    assert all(w in vocab.stoi and w not in vocab.SPECIALS for s in a for w in s)
    started = sample(model, vocab, n=2, temperature=0.5, prefix="a red")
    assert all(s[:2] == ["a", "red"] for s in started)


def test_sentence_log_prob_prefers_captions(data, trained):
    from course_utils.sequence.language_model import sentence_log_prob

    vocab, train, model = data[0], data[1], trained
    words = " ".join(vocab.decode(train[0].tolist()))
    scrambled = " ".join(reversed(words.split()))
    assert sentence_log_prob(model, vocab, words) > sentence_log_prob(model, vocab, scrambled)
    ids = torch.tensor([vocab.encode(tokenize(words))])
    model.train()
    score = sentence_log_prob(model, vocab, words)
    assert model.training  # scored in eval mode, then given its mode back
    with evaluating(model):  # no dropout
        expected = -lm_loss(model, ids).item() * (ids.shape[1] - 1)  # mean loss x number of targets
    assert score == pytest.approx(expected, rel=1e-4)


def test_sampling_never_emits_pad_or_start(data):
    vocab = data[0]
    model = WordLM(len(vocab), 4, 4, dropout=0.0)
    word = vocab.stoi["circle"]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.out.bias[vocab.pad_id] = 100.0  # the untrained model "prefers" <pad> and <start>
        model.out.bias[vocab.start_id] = 90.0
        model.out.bias[word] = 50.0
    assert sample(model, vocab, n=2, temperature=0, max_len=3) == [["circle"] * 3] * 2
    assert sample(model, vocab, n=2, temperature=1.0, max_len=3, generator=torch.Generator().manual_seed(0)) == [
        ["circle"] * 3] * 2
