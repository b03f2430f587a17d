"""Show and Tell: packed teacher forcing agrees with step-by-step generation; padding never counts."""

import torch

from course_utils.captioning.show_tell import ShowTell
from course_utils.captioning.train import caption_loss

VOCAB, ENC = 20, 12


def model():
    torch.manual_seed(0)
    return ShowTell(VOCAB, encoder_dim=ENC, embed_dim=8, hidden_dim=16, num_layers=2, dropout=0.0)


def captions(lengths, max_len):
    caps = torch.randint(4, VOCAB, (len(lengths), max_len), generator=torch.Generator().manual_seed(1))
    caps[:, 0] = 1
    for i, n in enumerate(lengths):
        caps[i, n - 1] = 2
        caps[i, n:] = 0
    return caps, torch.tensor(lengths)


def test_packed_forward_matches_step_by_step():
    m = model().eval()
    feats = torch.randn(3, 4, ENC)
    caps, lengths = captions([5, 3, 4], 6)
    out = m(feats, caps, lengths)
    assert out.alphas is None
    assert out.logits.shape == (int((lengths - 1).sum()), VOCAB)
    state = m.init_state(feats)
    steps = []
    for t in range(4):
        logits, state, alpha = m.step(state, caps[:, t])
        assert alpha is None
        steps.append(logits)
    by_step = torch.stack(steps, 1)  # (batch, steps, vocab)
    # packed order sorts by length: caption 0 (4 steps), 2 (3 steps), 1 (2 steps)
    rows = [(0, 0), (2, 0), (1, 0), (0, 1), (2, 1), (1, 1), (0, 2), (2, 2), (0, 3)]
    expected = torch.stack([by_step[i, t] for i, t in rows])
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)
    assert out.targets.tolist() == [int(caps[i, t + 1]) for i, t in rows]


def test_image_is_the_first_input_through_linear_and_batch_norm():
    m = model().train()
    feats = torch.randn(8, 4, ENC)
    x0 = m.image_input(feats)  # (batch, 1, embed_dim), normalised over the batch
    assert x0.shape == (8, 1, 8)
    torch.testing.assert_close(x0.mean(0), torch.zeros(1, 8), atol=1e-5, rtol=0)


def test_padding_never_reaches_the_loss():
    m = model()
    feats = torch.randn(2, 4, ENC)
    caps, lengths = captions([6, 3], 8)
    noisy = caps.clone()
    noisy[1, 3:] = 7
    noisy[0, 6:] = 9
    a, _ = caption_loss(m(feats, caps, lengths))
    b, _ = caption_loss(m(feats, noisy, lengths))
    assert torch.equal(a.detach(), b.detach())
