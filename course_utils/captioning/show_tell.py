"""Show and Tell (Vinyals et al., 2015), the baseline captioner of the master's thesis.

The image is summarised by ONE vector: the mean of the encoder's region vectors (what
ResNet's global average pooling computes), projected by ``linear + batch norm`` to the
word-embedding size. That vector is the LSTM's first input; then come the words:

    x_0 = BN(W_i mean(features)),  x_t = embedding(w_{t-1}),  p(w_t) = softmax(W_o h_t)

Training uses teacher forcing on packed sequences (``pack_padded_sequence``), so the
LSTM never steps over padding. Generation is one word at a time through the same
``init_state`` / ``step`` interface as the attention model (``course_utils.captioning.decoding``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from course_utils.captioning.outputs import DecoderOutput


def copy_embeddings(embedding: nn.Embedding, matrix: torch.Tensor, freeze: bool = False) -> None:
    """Copy ``matrix (vocab_size, embed_dim)`` (e.g. Word2Vec vectors) into ``embedding``; ``freeze``
    stops training it. Both decoders (this one and ``attention.ShowAttendTell``) use it."""
    if tuple(matrix.shape) != tuple(embedding.weight.shape):
        raise ValueError(f"embedding matrix has shape {tuple(matrix.shape)}, "
                         f"expected {tuple(embedding.weight.shape)} (vocab_size, embed_dim)")  # fmt: skip
    with torch.no_grad():
        embedding.weight.copy_(matrix)
    embedding.weight.requires_grad_(not freeze)


class ShowTell(nn.Module):
    """Image vector -> LSTM -> words.

    Shapes: ``features (batch, num_pixels, encoder_dim)`` (``num_pixels`` may be 1),
    ``captions (batch, max_len)`` starting with ``<start>``, ``lengths (batch,)``
    including ``<start>`` and ``<end>``.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_dim: int = 2048,
        embed_dim: int = 256,
        hidden_dim: int = 512,
        num_layers: int = 1,
        dropout: float = 0.5,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        self.vocab_size, self.encoder_dim, self.hidden_dim = vocab_size, encoder_dim, hidden_dim
        self.image_proj = nn.Sequential(nn.Linear(encoder_dim, embed_dim), nn.BatchNorm1d(embed_dim))
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden_dim, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_dim, vocab_size)

    def load_embeddings(self, matrix: torch.Tensor, freeze: bool = False) -> None:
        """Start the embedding from ``matrix (vocab_size, embed_dim)``, e.g. Word2Vec vectors."""
        copy_embeddings(self.embedding, matrix, freeze)

    def image_input(self, features: torch.Tensor) -> torch.Tensor:
        """``x_0 = BN(W_i mean(features))``: ``(batch, num_pixels, encoder_dim)`` -> ``(batch, 1, embed_dim)``."""
        return self.image_proj(features.mean(dim=1)).unsqueeze(1)

    def forward(self, features: torch.Tensor, captions: torch.Tensor, lengths: torch.Tensor) -> DecoderOutput:
        """Teacher forcing. The image step primes ``(h, c)``; then ``<start> w1 ... w_{n-1}`` go
        in as a packed sequence and ``w1 ... w_n <end>`` are the targets."""
        _, state = self.lstm(self.image_input(features))  # (h, c): (num_layers, batch, hidden_dim)
        steps = lengths.cpu() - 1
        inputs = pack_padded_sequence(self.embedding(captions[:, :-1]), steps, batch_first=True, enforce_sorted=False)
        outputs, _ = self.lstm(inputs, state)  # packed hidden states: data (num_tokens, hidden_dim)
        targets = pack_padded_sequence(captions[:, 1:], steps, batch_first=True, enforce_sorted=False).data
        return DecoderOutput(self.fc(self.dropout(outputs.data)), targets, None)

    # ------------------------------------------------------------------ generation, one word at a time
    def init_state(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(h, c)`` after seeing the image, batch-first: each ``(batch, num_layers, hidden_dim)``."""
        _, (h, c) = self.lstm(self.image_input(features))
        return h.transpose(0, 1), c.transpose(0, 1)

    def step(
        self, state: tuple[torch.Tensor, ...], words: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], None]:
        """Feed ``words (batch,)``; return ``logits (batch, vocab_size)``, the new state, and
        ``None`` where the attention model returns its weights."""
        h, c = (s.transpose(0, 1).contiguous() for s in state)  # (num_layers, batch, hidden_dim)
        out, (h, c) = self.lstm(self.embedding(words).unsqueeze(1), (h, c))
        return self.fc(self.dropout(out[:, 0])), (h.transpose(0, 1), c.transpose(0, 1)), None
