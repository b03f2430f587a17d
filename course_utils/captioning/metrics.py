"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr, perplexity, attention localisation.

BLEU, ROUGE-L and CIDEr are computed by the official COCO caption scorers
(``pycocoevalcap``), called directly rather than through ``COCOEvalCap`` because its
``PTBTokenizer`` needs Java: references and hypotheses are tokenised by the kit's one
tokenizer (``course_utils.sequence.text.tokenize``) before they get here, so both sides are
treated the same way. METEOR (also from ``pycocoevalcap``) runs the METEOR 1.5 jar and
is computed only when ``java`` is on the PATH and the captions are English.

Every score is reported on a 0-100 scale, as in papers (``bleu4: 27.3``).
"""

from __future__ import annotations

import math
import shutil
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge


def _as_coco(
    hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[Sequence[str]]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """The scorers' input: ``{image_index: [sentence]}``, sentences as space-joined tokens."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists: one per image")
    res, gts = {}, {}
    for i, (hyp, refs) in enumerate(zip(hypotheses, references)):
        if isinstance(hyp, str) or any(isinstance(r, str) for r in refs):
            raise TypeError(f"image {i}: pass tokens (lists of words), not strings; "
                            "use course_utils.sequence.text.tokenize")
        if not refs:
            raise ValueError(f"image {i}: no reference caption")
        res[i] = [" ".join(hyp)]
        gts[i] = [" ".join(r) for r in refs]
    return res, gts


def java_available() -> bool:
    """True if a ``java`` executable is on the PATH (METEOR needs it)."""
    return shutil.which("java") is not None


_METEOR: list = []  # one METEOR process, started on first use (the jar takes ~15 s to load)


def meteor_score(res: Mapping[int, list[str]], gts: Mapping[int, list[str]]) -> Optional[float]:
    """METEOR (0-1) through pycocoevalcap's jar, or None (with one warning line) if Java cannot run it."""
    from pycocoevalcap.meteor.meteor import Meteor

    try:
        if not _METEOR:
            _METEOR.append(Meteor())
        score, _ = _METEOR[0].compute_score(gts, res)
    except (OSError, ValueError) as err:  # no java, or the jar failed to start / answer
        _METEOR.clear()
        print(f"warning: METEOR skipped ({err})")
        return None
    return float(score)


def caption_scores(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    meteor: Optional[bool] = None,
) -> dict[str, float]:
    """Corpus scores (0-100) of tokenised ``hypotheses`` against tokenised ``references``.

    ``hypotheses[i]`` is the generated caption of image ``i`` (a list of words);
    ``references[i]`` is the list of its reference captions (each a list of words).
    ``meteor``: None = when Java is available, True/False to force. Keys: ``bleu1`` ..
    ``bleu4``, ``rouge_l``, ``cider`` and, when computed, ``meteor``.
    """
    res, gts = _as_coco(hypotheses, references)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"bleu{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    scores["rouge_l"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    if meteor or (meteor is None and java_available()):
        value = meteor_score(res, gts)
        if value is not None:
            scores["meteor"] = 100.0 * value
    return scores


def perplexity(mean_loss: float) -> float:
    """``exp(mean cross-entropy per token)`` (nats): the number of words the model hesitates
    between on average. Seed 002 reports 40.12 on Flickr30k after 7 epochs."""
    return math.exp(min(mean_loss, 50.0))  # capped: exp(50) already means "nothing learned"


def region_boxes(grid: int, image_size: tuple[int, int]) -> np.ndarray:
    """Pixel rectangles ``(grid*grid, 4)`` as ``[x0, y0, x1, y1]`` of the regions of a
    ``grid x grid`` layout over an image of ``image_size = (width, height)``, row-major."""
    width, height = image_size
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    cw, ch = width / grid, height / grid
    return np.stack([cols * cw, rows * ch, (cols + 1) * cw, (rows + 1) * ch], axis=1)


def _overlaps(cell: np.ndarray, box: Sequence[float]) -> bool:
    """Do the rectangles ``[x0, y0, x1, y1]`` share some area?"""
    return bool(min(cell[2], box[2]) > max(cell[0], box[0]) and min(cell[3], box[3]) > max(cell[1], box[1]))


def attention_localisation(
    words: Sequence[Sequence[str]],
    alphas: Sequence[Any],
    objects: Sequence[Sequence[Mapping[str, Any]]],
    image_sizes: Sequence[tuple[int, int]],
    grid: int,
) -> dict[str, float]:
    """Does the attention peak fall on the object a word names? (synthetic data, known boxes)

    For image ``i``: ``words[i]`` the generated words, ``alphas[i] (len(words[i]), grid*grid)``,
    ``objects[i]`` its objects, each with ``box [x0, y0, x1, y1]`` in pixels and
    ``words`` (the caption words that name it), ``image_sizes[i] = (width, height)`` in pixels.

    A generated word that names an object counts as a hit if the region with the most
    attention overlaps the box of an object that word names. Returns
    ``attention_localisation`` (hits / object words, 0-1), ``chance`` (the same share
    for a region drawn uniformly at random, the baseline to beat) and ``object_words``.
    """
    hits, chance, total = 0, 0.0, 0
    for ws, a, objs, size in zip(words, alphas, objects, image_sizes):
        if a is None:
            raise ValueError("attention localisation needs attention weights; this model has none")
        a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=float)
        if a.shape != (len(ws), grid * grid):
            raise ValueError(f"alphas of shape {a.shape} for {len(ws)} words on a {grid}x{grid} grid")
        cells = region_boxes(grid, size)
        for t, word in enumerate(ws):
            boxes = [o["box"] for o in objs if word in o["words"]]
            if not boxes:
                continue
            on_object = np.array([any(_overlaps(c, b) for b in boxes) for c in cells])
            hits += bool(on_object[int(a[t].argmax())])
            chance += float(on_object.mean())
            total += 1
    if total == 0:
        return {"attention_localisation": float("nan"), "chance": float("nan"), "object_words": 0}
    return {"attention_localisation": hits / total, "chance": chance / total, "object_words": total}
