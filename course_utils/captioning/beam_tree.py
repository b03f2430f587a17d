"""Draw what beam search did: the tree of partial captions it kept and the ones it dropped.

``decoding.beam_search(..., trace=steps)`` records every step; :func:`plot_beam_tree`
draws one image's search from that record. Column ``t`` holds the candidates of step
``t``: for every beam still alive, its ``per_beam`` most likely next words (those with a
probability above one in a million). An edge carries
``log p(word)``; a node shows the word and the candidate's score (the sum of the
log-probabilities from ``<start>``). Blue boxes are the ``k`` candidates kept as beams,
green ones the beams that wrote ``<end>`` and were set aside as finished captions, grey
words the candidates that did not make the top ``k``.
"""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib.pyplot as plt
import torch

__all__ = ["plot_beam_tree"]

_UNLIKELY = math.log(1e-6)  # words with a smaller probability are not drawn


def _level(step: dict[str, torch.Tensor], image: int, parents_y: dict[int, float], end_id: int,
           per_beam: int) -> list[dict]:
    """The candidates of one step for one image: parent row, word, log p, score, kept rank or None."""
    nodes = []
    kept = {(int(p), int(w)): r for r, (p, w, s) in enumerate(zip(step["parents"][image], step["words"][image],
                                                                step["top"][image])) if math.isfinite(s)}
    for j in sorted(parents_y, key=lambda j: -parents_y[j]):  # beams top to bottom
        log_probs = step["log_probs"][image, j]  # (vocab_size,)
        best = {w for w in log_probs.topk(min(per_beam, len(log_probs))).indices.tolist() if log_probs[w] > _UNLIKELY}
        best |= {w for (p, w) in kept if p == j}  # a kept word is always drawn
        for w in sorted(best, key=lambda w: -float(log_probs[w])):
            nodes.append({"parent": j, "word": w, "logp": float(log_probs[w]), "ended": w == end_id,
                          "score": float(step["scores"][image, j] + log_probs[w]), "rank": kept.get((j, w))})
    return nodes


def plot_beam_tree(trace: Sequence[dict[str, torch.Tensor]], words: Sequence[str], end_id: int, image: int = 0,
                   per_beam: int = 3) -> plt.Figure:
    """The search tree of image ``image`` from ``trace`` (see the module docstring); ``words[id]`` is a word."""
    fig, ax = plt.subplots(figsize=(2.3 * (len(trace) + 1), 0.9 + 0.55 * per_beam * trace[0]["top"].shape[1]))
    ax.text(0, 0, "<start>\n0.00", ha="center", va="center", bbox={"boxstyle": "round", "fc": "lightblue"})
    parents_y = {0: 0.0}  # beam row -> height of its node
    for t, step in enumerate(trace, start=1):
        nodes = _level(step, image, parents_y, end_id, per_beam)
        heights = [(len(nodes) - 1) / 2 - i for i in range(len(nodes))]
        for node, y in zip(nodes, heights):
            y0 = parents_y[node["parent"]]
            kept = node["rank"] is not None
            ax.plot([t - 1 + 0.25, t - 0.3], [y0, y], color="black" if kept else "0.8", lw=1.5 if kept else 0.8)
            ax.text(t - 0.45, y0 + 0.8 * (y - y0), f"{node['logp']:.2f}", fontsize=7, ha="right", va="bottom",
                    color="black" if kept else "0.6")
            box = {"boxstyle": "round", "fc": "lightgreen" if node["ended"] else "lightblue"} if kept else None
            ax.text(t, y, f"{words[node['word']]}\n{node['score']:.2f}", ha="center", va="center", bbox=box,
                    color="black" if kept else "0.55", fontsize=9)
        alive = [(node, y) for node, y in zip(nodes, heights) if node["rank"] is not None and not node["ended"]]
        parents_y = {node["rank"]: y for node, y in alive}  # the beams the next step extends
        if not parents_y:
            break
    ax.set_xlim(-0.5, len(trace) + 0.5)
    ax.set_xticks(range(len(trace) + 1), ["start"] + [f"step {t}" for t in range(1, len(trace) + 1)])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"beam search, k = {trace[0]['top'].shape[1]}: blue = kept beams, green = finished, grey = dropped")
    fig.tight_layout()
    return fig
