"""Show, Attend and Tell (Xu et al., 2015): an LSTM that looks at image regions.

At each step ``t`` the decoder

1. scores every region ``i`` against its previous hidden state (additive attention):
   ``e_ti = w . tanh(W_f f_i + W_h h_{t-1})``, ``alpha_t = softmax(e_t)`` (sums to 1);
2. summarises the image as the context ``z_t = sum_i alpha_ti f_i``, scaled by a gate
   ``beta_t = sigmoid(W_b h_{t-1})`` in (0, 1) that lets it say "no need to look now"
   (Xu et al.'s ``beta_t`` is one number per step; here it has one value per channel of
   the context, a common variant: ``W_b`` is ``hidden_dim -> encoder_dim``);
3. feeds ``[embedding(w_{t-1}); beta_t * z_t]`` to an ``nn.LSTMCell``;
4. predicts word ``t`` from ``dropout(h_t)``.

The first ``(h, c)`` come from the mean region vector (the lab report TP2 Attention). Training adds the
doubly stochastic penalty ``alpha_c * sum_i (1 - sum_t alpha_ti)^2``, which asks every
region to be looked at about once over the caption.

Written by hand (not a library module) because notebook 09 builds it piece by piece.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from course_utils.captioning.outputs import DecoderOutput
from course_utils.captioning.show_tell import copy_embeddings

__all__ = ["Attention", "DecoderOutput", "ShowAttendTell", "doubly_stochastic_penalty", "padded_logits"]


class Attention(nn.Module):
    """Additive attention over ``num_pixels`` regions.

    ``features (batch, num_pixels, encoder_dim)``, ``hidden (batch, hidden_dim)`` ->
    ``context (batch, encoder_dim)``, ``alpha (batch, num_pixels)`` with rows summing to 1.

    Beam search asks about ``k`` beams per image: ``hidden`` then has ``batch * k`` rows
    (image-major: rows ``i * k ... i * k + k - 1`` belong to image ``i``) and the image's
    features are shared by its beams instead of being copied ``k`` times.
    """

    def __init__(self, encoder_dim: int, hidden_dim: int, attention_dim: int) -> None:
        super().__init__()
        self.feature_proj = nn.Linear(encoder_dim, attention_dim)  # W_f
        self.hidden_proj = nn.Linear(hidden_dim, attention_dim)  # W_h
        self.score = nn.Linear(attention_dim, 1)  # w

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """``W_f f``, computed once per image: ``(batch, num_pixels, attention_dim)``."""
        return self.feature_proj(features)

    def forward(
        self, features: torch.Tensor, projected: torch.Tensor, hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Context ``(rows, encoder_dim)`` and weights ``alpha (rows, num_pixels)``, ``rows = len(hidden)``."""
        batch = features.shape[0]
        query = self.hidden_proj(hidden).view(batch, -1, 1, projected.shape[2])  # (batch, k, 1, attention_dim)
        energy = torch.tanh(projected.unsqueeze(1) + query)  # (batch, k, num_pixels, attention_dim)
        alpha = torch.softmax(self.score(energy).squeeze(3), dim=2)  # (batch, k, num_pixels)
        context = torch.bmm(alpha, features)  # (batch, k, encoder_dim): one small matrix product per image
        return context.flatten(0, 1), alpha.flatten(0, 1)


class ShowAttendTell(nn.Module):
    """The attention decoder: grid features and a caption prefix in, next-word scores out.

    ``forward(features, captions, lengths)`` trains with teacher forcing;
    ``init_state`` + ``step`` generate one word at a time (see ``course_utils.captioning.decoding``).

    Shapes: ``features (batch, num_pixels, encoder_dim)``, ``captions (batch, max_len)``
    token ids starting with ``<start>``, ``lengths (batch,)`` including ``<start>`` and
    ``<end>``.
    """

    # init_state's first two tensors (features, projected) belong to the image, not to a beam:
    # beam search keeps one row per image for them (see ``Attention``) and k rows for h and c.
    beam_invariant_state = 2

    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int = 2048,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        attention_dim: int = 256,
        dropout: float = 0.5,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.encoder_dim, self.hidden_dim = vocab_size, encoder_dim, hidden_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        nn.init.xavier_uniform_(self.embedding.weight)  # the lab report TP2 Attention: Xavier initialisation
        self.attention = Attention(encoder_dim, hidden_dim, attention_dim)
        self.init_h = nn.Linear(encoder_dim, hidden_dim)
        self.init_c = nn.Linear(encoder_dim, hidden_dim)
        self.gate = nn.Linear(hidden_dim, encoder_dim)  # beta = sigmoid(W_b h), one value per channel
        self.lstm = nn.LSTMCell(embed_dim + encoder_dim, hidden_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def load_embeddings(self, matrix: torch.Tensor, freeze: bool = False) -> None:
        """Start the embedding from ``matrix (vocab_size, embed_dim)``, e.g. Word2Vec vectors."""
        copy_embeddings(self.embedding, matrix, freeze)

    def init_hidden(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, c)``, each ``(batch, hidden_dim)``, from the mean region ``(batch, encoder_dim)``."""
        mean = features.mean(dim=1)
        return torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))

    def attend(
        self, features: torch.Tensor, projected: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Gated context ``beta * z`` ``(batch, encoder_dim)`` and ``alpha (batch, num_pixels)``."""
        context, alpha = self.attention(features, projected, h)  # z (batch, encoder_dim)
        gate = torch.sigmoid(self.gate(h))  # beta (batch, encoder_dim), in (0, 1)
        return gate * context, alpha

    def forward(self, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> DecoderOutput:
        """Teacher forcing: word ``t`` is predicted from the true words before it.

        Captions are sorted by length and the batch shrinks at each step: at step ``t``
        only the ``batch_sizes[t]`` captions still running are computed, so no work is
        spent on padded positions. ``python -m course_utils bench`` compares it with running
        the full batch at every step and masking the loss (``decoder_speedup`` in
        ``docs/benchmarks.md``).
        """
        steps, order, batch_sizes = by_length(lengths)
        features, captions = features[order], captions[order]
        embedded = self.embedding(captions[:, : len(batch_sizes)])  # (batch, steps, embed_dim)
        projected = self.attention.project(features)  # (batch, num_pixels, attention_dim)
        h, c = self.init_hidden(features)
        hiddens, alphas = [], []
        for t, n in enumerate(batch_sizes):
            context, alpha = self.attend(features[:n], projected[:n], h[:n])
            h, c = self.lstm(torch.cat([embedded[:n, t], context], dim=1), (h[:n], c[:n]))
            hiddens.append(h)
            alphas.append(alpha)
        sizes = torch.tensor(batch_sizes)
        logits = self.fc(self.dropout(torch.cat(hiddens)))  # (num_tokens, vocab_size), packed order
        targets = pack_padded_sequence(captions[:, 1:], steps, batch_first=True).data  # (num_tokens,)
        padded, _ = pad_packed_sequence(PackedSequence(torch.cat(alphas), sizes), batch_first=True)
        return DecoderOutput(logits, targets, padded[order.argsort()])  # alphas back in input order

    # ------------------------------------------------------------------ generation, one word at a time
    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Decoding state, every tensor batch-first so beam search can reorder it:
        ``features (batch, num_pixels, encoder_dim)``, ``projected (batch, num_pixels, attention_dim)``,
        ``h, c (batch, hidden_dim)``. Beam search gives ``h`` and ``c`` ``batch * k`` rows."""
        h, c = self.init_hidden(features)
        return features, self.attention.project(features), h, c

    def step(
        self, state: tuple[torch.Tensor, ...], words: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
        """Feed ``words (rows,)``; return ``logits (rows, vocab_size)``, the new state and
        ``alpha (rows, num_pixels)``, the attention used for the word being predicted.
        ``rows`` is ``len(h)``: the batch, or ``batch * k`` beams in beam search."""
        features, projected, h, c = state
        context, alpha = self.attend(features, projected, h)
        h, c = self.lstm(torch.cat([self.embedding(words), context], dim=1), (h, c))
        return self.fc(self.dropout(h)), (features, projected, h, c), alpha


def by_length(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The order ``forward`` runs captions in: ``steps`` (predictions per caption, ``lengths - 1``,
    longest first), ``order`` (``steps = (lengths - 1)[order]``; a stable sort, so equal lengths keep
    their input order) and ``batch_sizes[t]``, the captions still running at step ``t``."""
    steps, order = torch.sort(lengths.cpu() - 1, descending=True, stable=True)
    return steps, order, [int((steps > t).sum()) for t in range(int(steps[0]))]


def padded_logits(logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``ShowAttendTell.forward``'s packed ``logits (num_tokens, vocab_size)`` laid out again as
    ``(batch, steps, vocab_size)``, in the input's batch order, zero on padded steps."""
    _, order, batch_sizes = by_length(lengths)
    padded, _ = pad_packed_sequence(PackedSequence(logits, torch.tensor(batch_sizes)), batch_first=True)
    return padded[order.argsort()]


def doubly_stochastic_penalty(alphas: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean over batch and regions of (1 - sum_t alpha_ti)^2`` for ``alphas (batch, steps, num_pixels)``.

    Xu et al.'s regulariser (their eq. 14, averaged instead of summed): every region
    should receive a total attention of about 1 over the caption, so the model cannot
    stare at one region for every word. ``forward`` leaves zeros on padded steps; with
    ``lengths (batch,)`` (including ``<start>`` and ``<end>``) the steps after caption
    ``i``'s ``lengths[i] - 1`` are ignored whatever they hold (a decoder that runs the
    whole batch at every step computes attention there too).
    """
    if lengths is not None:
        t = torch.arange(alphas.shape[1], device=alphas.device)  # (steps,)
        real = t[None, :] < (lengths.to(alphas.device) - 1)[:, None]  # (batch, steps)
        alphas = alphas * real.unsqueeze(2)
    return ((1.0 - alphas.sum(dim=1)) ** 2).mean()
