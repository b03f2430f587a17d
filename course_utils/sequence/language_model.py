"""A word-level language model on captions, and sampling with a temperature (notebook 06).

The decoder of an image captioner (notebooks 08-09) is a language model that also
sees the image. This one sees only words: given ``<start> a red circle``, it predicts
the next word. Trained on captions, it already writes caption-like sentences; what it
cannot know is *which* shapes are in the picture. That is the job of the image.

* :class:`WordLM`: embedding -> LSTM -> linear layer over the vocabulary;
* :func:`train_lm`: teacher forcing (the input at step t is the true word t, the target
  is word t+1), cross-entropy that ignores ``<pad>``, perplexity = exp(loss);
* :func:`sample`: generate word by word, drawing from ``softmax(logits / T)``. A low
  temperature ``T`` sharpens the distribution (``T -> 0`` is greedy decoding), a high
  one flattens it (more varied, more mistakes).
"""

from __future__ import annotations

import math
import time
from typing import Iterator, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.basics.networks import evaluating, model_device
from course_utils.sequence.text import tokenize
from course_utils.sequence.vocab import Vocabulary, pad_captions


class WordLM(nn.Module):
    """``tokens (batch, steps)`` -> ``logits (batch, steps, vocab_size)`` for the next word at each step."""

    def __init__(self, vocab_size: int, embed_dim: int = 64, hidden_size: int = 128, num_layers: int = 1,
                 dropout: float = 0.2, pad_id: int = 0):  # fmt: skip
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.lstm = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, tokens: torch.Tensor, state: Optional[tuple[torch.Tensor, torch.Tensor]] = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Returns ``logits (batch, steps, vocab_size)`` and the LSTM state ``(h, c)``,
        each ``(num_layers, batch, hidden_size)``, to continue from."""
        x = self.drop(self.embed(tokens))  # (batch, steps, embed_dim)
        outputs, state = self.lstm(x, state)  # (batch, steps, hidden_size)
        return self.out(self.drop(outputs)), state


def encode_captions(captions: Sequence[str], vocab: Vocabulary) -> list[torch.Tensor]:
    """Each caption -> ids ``(length,)`` of ``<start> words <end>`` (``text.tokenize``, unknown -> ``<unk>``)."""
    return [torch.tensor(vocab.encode(tokenize(c)), dtype=torch.long) for c in captions]


def batches(
    encoded: Sequence[torch.Tensor], batch_size: int, shuffle: bool = True, generator: Optional[torch.Generator] = None
) -> Iterator[torch.Tensor]:
    """Padded batches ``(batch, max_len)`` of encoded captions (``<pad>`` = 0)."""
    order = torch.randperm(len(encoded), generator=generator) if shuffle else torch.arange(len(encoded))
    for start in range(0, len(encoded), batch_size):
        yield pad_captions([encoded[i] for i in order[start : start + batch_size]])[0]


def lm_loss(model: WordLM, captions: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """Mean cross-entropy of predicting word t+1 from words 0..t, over non-pad targets.

    ``captions (batch, max_len)``: inputs are ``captions[:, :-1]``, targets ``captions[:, 1:]``.
    """
    logits, _ = model(captions[:, :-1])  # (batch, max_len - 1, vocab)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), captions[:, 1:].reshape(-1), ignore_index=pad_id)


@torch.no_grad()
def evaluate_lm(model: WordLM, encoded: Sequence[torch.Tensor], batch_size: int = 256,
                device: Union[str, torch.device] = "cpu", pad_id: int = 0) -> float:  # fmt: skip
    """Mean loss per predicted word over ``encoded`` (eval mode, no dropout)."""
    total, count = 0.0, 0
    with evaluating(model):
        for caps in batches(encoded, batch_size, shuffle=False):
            caps = caps.to(device)
            n = int((caps[:, 1:] != pad_id).sum())
            total += lm_loss(model, caps, pad_id).item() * n
            count += n
    return total / max(count, 1)


def train_lm(
    model: WordLM,
    train: Sequence[torch.Tensor],
    val: Sequence[torch.Tensor],
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 3e-3,
    device: Union[str, torch.device] = "cpu",
    generator: Optional[torch.Generator] = None,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Adam with gradient clipping; one line per epoch.

    Returns ``history`` with ``train_loss``, ``val_loss`` and ``val_perplexity`` (= exp of
    the validation loss: the number of equally likely words the model hesitates between).
    """
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_perplexity": []}
    for epoch in range(1, epochs + 1):
        start, model_losses = time.perf_counter(), []
        model.train()
        for caps in batches(train, batch_size, generator=generator):
            loss = lm_loss(model, caps.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # RNNs can have exploding gradients
            opt.step()
            model_losses.append(loss.item())
        val_loss = evaluate_lm(model, val, device=device)
        history["train_loss"].append(sum(model_losses) / len(model_losses))
        history["val_loss"].append(val_loss)
        history["val_perplexity"].append(math.exp(val_loss))
        if verbose:
            print(f"epoch {epoch}: train_loss {history['train_loss'][-1]:.3f}  val_loss {val_loss:.3f}  "
                  f"val_perplexity {math.exp(val_loss):.2f}  ({time.perf_counter() - start:.1f} s)")  # fmt: skip
    return history


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Probabilities ``softmax(logits / temperature)`` over the last dimension.

    ``temperature == 0`` means greedy: probability 1 on the arg-max (ties: the first).
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


@torch.no_grad()
def sample(
    model: WordLM,
    vocab: Vocabulary,
    n: int = 5,
    temperature: float = 1.0,
    max_len: int = 20,
    prefix: str = "",
    generator: Optional[torch.Generator] = None,
) -> list[list[str]]:
    """``n`` sentences generated word by word (all ``n`` at once, as one batch).

    Each starts with ``<start>`` and the words of ``prefix``; a sentence ends at ``<end>``
    or after ``max_len`` words. Special tokens are dropped from the result.
    """
    with evaluating(model):
        out = _generate(model, vocab, n, temperature, max_len, prefix, generator)
    return [vocab.decode(ids) for ids in out]


def _generate(model: WordLM, vocab: Vocabulary, n: int, temperature: float, max_len: int, prefix: str,
              generator: Optional[torch.Generator]) -> list[list[int]]:  # fmt: skip
    """The ids of :func:`sample`'s sentences, ``<start>`` included."""
    device = model_device(model)
    start = [vocab.start_id] + [vocab.stoi.get(w, vocab.unk_id) for w in tokenize(prefix)]
    tokens = torch.tensor([start] * n, device=device)  # (n, len(start))
    logits, state = model(tokens)
    out = tokens.tolist()
    done = torch.zeros(n, dtype=torch.bool, device=device)
    for _ in range(max_len):
        last = logits[:, -1].clone()  # (n, vocab): scores of the next word
        last[:, [vocab.pad_id, vocab.start_id]] = float("-inf")  # never produce <pad> or <start>
        probs = apply_temperature(last, temperature)  # (n, vocab)
        if temperature == 0:
            nxt = probs.argmax(1)
        else:
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(device)  # (n,)
        nxt = torch.where(done, torch.full_like(nxt, vocab.end_id), nxt)
        for i, t in enumerate(nxt.tolist()):
            out[i].append(t)
        done |= nxt == vocab.end_id
        if done.all():
            break
        logits, state = model(nxt[:, None], state)  # one step: (n, 1, vocab)
    return out


@torch.no_grad()
def sentence_log_prob(model: WordLM, vocab: Vocabulary, sentence: str) -> float:
    """``log P(sentence) = sum_t log P(w_t | <start> w_1 ... w_{t-1})``, natural log, ``<end>`` included.

    One forward pass with teacher forcing: the input is ``<start> w_1 ... w_n``, the
    targets ``w_1 ... w_n <end>``. Higher (closer to 0) = more caption-like to the model.
    """
    ids = torch.tensor([vocab.encode(tokenize(sentence))], device=model_device(model))  # (1, n + 2)
    with evaluating(model):
        logits, _ = model(ids[:, :-1])  # (1, n + 1, vocab)
    log_probs = logits[0].log_softmax(-1)  # (n + 1, vocab)
    return log_probs.gather(1, ids[0, 1:, None]).sum().item()
