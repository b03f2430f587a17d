"""Show, Attend and Tell: attention weights, the gate, packing, and the loss never seeing padding."""

import pytest
import torch
import torch.nn.functional as F

from course_utils.captioning.attention import Attention, ShowAttendTell, doubly_stochastic_penalty, padded_logits
from course_utils.captioning.train import caption_loss

VOCAB, ENC, P = 25, 12, 9


def batch(lengths, seed=0, max_len=None):
    """Random captions ``<start> w ... <end> <pad>...`` with the given lengths."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    max_len = max_len or int(lengths.max())
    caps = torch.randint(4, VOCAB, (len(lengths), max_len), generator=g)
    caps[:, 0] = 1
    for i, n in enumerate(lengths.tolist()):
        caps[i, n - 1] = 2
        caps[i, n:] = 0
    feats = torch.randn(len(lengths), P, ENC, generator=g)
    return feats, caps, lengths


def model(dropout=0.0):
    torch.manual_seed(0)
    return ShowAttendTell(VOCAB, encoder_dim=ENC, embed_dim=8, hidden_dim=16, attention_dim=10, dropout=dropout)


def test_attention_weights_sum_to_one():
    att = Attention(ENC, 16, 10)
    feats, hidden = torch.randn(4, P, ENC), torch.randn(4, 16)
    context, alpha = att(feats, att.project(feats), hidden)
    assert context.shape == (4, ENC) and alpha.shape == (4, P)
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))
    assert (alpha >= 0).all()
    torch.testing.assert_close(context, (alpha.unsqueeze(2) * feats).sum(1))


def test_beams_share_their_image_features():
    """k hidden states per image against one feature row = the same features copied k times."""
    att = Attention(ENC, 16, 10)
    feats, hidden = torch.randn(3, P, ENC), torch.randn(3 * 4, 16)  # 3 images, 4 beams each
    context, alpha = att(feats, att.project(feats), hidden)
    copied = feats.repeat_interleave(4, dim=0)  # (12, P, ENC), rows image-major like the beams
    ref_context, ref_alpha = att(copied, att.project(copied), hidden)
    assert context.shape == (12, ENC) and alpha.shape == (12, P)
    torch.testing.assert_close(alpha, ref_alpha)
    torch.testing.assert_close(context, ref_context)


def test_forward_shapes_and_alphas_per_step():
    m = model()
    feats, caps, lengths = batch([6, 3, 5, 6, 2])
    out = m(feats, caps, lengths)
    steps = int(lengths.max()) - 1
    assert out.alphas.shape == (5, steps, P)  # (batch, steps, regions)
    assert out.logits.shape == (int((lengths - 1).sum()), VOCAB)
    assert out.targets.shape == (int((lengths - 1).sum()),)
    sums = out.alphas.sum(2)  # 1 on real steps, 0 on padded ones, in the input order
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(sums[i, : n - 1], torch.ones(n - 1))
        assert (sums[i, n - 1 :] == 0).all()
    assert sorted(out.targets.tolist()) == sorted(caps[:, 1:][caps[:, 1:] != 0].tolist())


def test_gate_is_between_zero_and_one():
    m = model()
    feats = torch.randn(3, P, ENC) * 10
    h = torch.randn(3, 16) * 10
    projected = m.attention.project(feats)
    gated, alpha = m.attend(feats, projected, h)
    context, alpha_alone = m.attention(feats, projected, h)
    gate = torch.sigmoid(m.gate(h))  # beta (3, ENC)
    assert ((gate > 0) & (gate < 1)).all()
    torch.testing.assert_close(gated, gate * context)
    torch.testing.assert_close(alpha, alpha_alone)


def test_teacher_forcing_matches_step_by_step_decoding():
    m = model().eval()
    feats, caps, lengths = batch([5, 4])
    out = m(feats, caps, lengths)
    state = m.init_state(feats)
    logits = []
    for t in range(4):
        step_logits, state, _ = m.step(state, caps[:, t])
        logits.append(step_logits)
    padded = torch.stack(logits, 1)  # (batch, steps, vocab)
    # packed order: time-major over the captions still running, longest first
    expected = torch.cat([padded[0, 0:1], padded[1, 0:1], padded[0, 1:2], padded[1, 1:2],
                          padded[0, 2:3], padded[1, 2:3], padded[0, 3:4]])  # fmt: skip
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)


def test_padded_positions_never_reach_the_loss():
    m = model()
    feats, caps, lengths = batch([7, 3, 5], max_len=9)
    loss_a, _ = caption_loss(m(feats, caps, lengths))
    garbage = caps.clone()
    for i, n in enumerate(lengths.tolist()):
        garbage[i, n:] = torch.randint(4, VOCAB, (garbage.shape[1] - n,))
    loss_b, _ = caption_loss(m(feats, garbage, lengths))
    assert float(loss_a.detach()) == float(loss_b.detach())
    loss_a.backward()  # the <pad> row of the embedding gets no gradient
    assert m.embedding.weight.grad[0].abs().sum() == 0


def test_cross_entropy_counts_each_real_token_once():
    m = model()
    feats, caps, lengths = batch([4, 6])
    out = m(feats, caps, lengths)
    _, ce = caption_loss(out, alpha_c=0.0)
    assert out.targets.numel() == 3 + 5
    torch.testing.assert_close(ce, F.cross_entropy(out.logits, out.targets))


def test_doubly_stochastic_penalty():
    alphas = torch.zeros(2, 3, 4)
    alphas[:, :, 0] = 1.0  # every step stares at region 0: sums (3, 0, 0, 0)
    assert float(doubly_stochastic_penalty(alphas)) == pytest.approx((4 + 1 + 1 + 1) / 4)
    uniform = torch.full((1, 4, 4), 0.25)  # each region gets exactly 1 in total
    assert float(doubly_stochastic_penalty(uniform)) == 0.0


def test_load_embeddings_checks_shape():
    m = model()
    vectors = torch.randn(VOCAB, 8)
    m.load_embeddings(vectors, freeze=True)
    torch.testing.assert_close(m.embedding.weight, vectors)
    assert not m.embedding.weight.requires_grad
    with pytest.raises(ValueError, match=r"\(vocab_size, embed_dim\)"):
        m.load_embeddings(torch.randn(VOCAB, 9))


def test_padded_logits_puts_every_score_back_at_its_caption_and_step():
    m = model().eval()
    feats, caps, lengths = batch([4, 6, 4, 2])  # ties: the stable sort keeps their input order
    out = m(feats, caps, lengths)
    padded = padded_logits(out.logits, lengths)
    assert padded.shape == (4, 5, VOCAB)
    for i, n in enumerate(lengths.tolist()):
        state = m.init_state(feats[i : i + 1])
        for t in range(n - 1):
            step_logits, state, _ = m.step(state, caps[i : i + 1, t])
            torch.testing.assert_close(padded[i, t], step_logits[0], atol=1e-5, rtol=1e-5)
        assert (padded[i, n - 1 :] == 0).all()


def test_doubly_stochastic_penalty_ignores_padded_steps_given_lengths():
    alphas = torch.softmax(torch.randn(3, 5, 4), dim=-1)
    lengths = torch.tensor([6, 3, 4])  # 5, 2 and 3 steps
    clean = alphas.clone()
    for i, n in enumerate(lengths.tolist()):
        clean[i, n - 1 :] = 0
    torch.testing.assert_close(doubly_stochastic_penalty(alphas, lengths), doubly_stochastic_penalty(clean))
    torch.testing.assert_close(doubly_stochastic_penalty(clean, lengths), doubly_stochastic_penalty(clean))
