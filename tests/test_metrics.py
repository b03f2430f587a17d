"""Caption metrics equal pycocoevalcap's on the same inputs; localisation on hand-made boxes."""

import math
import shutil

import numpy as np
import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from course_utils.captioning.metrics import attention_localisation, caption_scores, perplexity, region_boxes
from course_utils.sequence.text import tokenize

REFS = [
    ["a red circle to the left of a blue square", "a blue square right of a red circle",
     "two shapes: a red circle and a blue square"],
    ["a small green star in the top left corner", "there is a green star in the top left corner"],
    ["un cercle rouge à gauche d'un carré bleu", "l'image montre un cercle rouge"],
]  # fmt: skip
HYPS = ["a red circle left of a blue square", "a green star in the top right corner",
        "un cercle rouge à gauche d'un carré"]


def tokens():
    return [tokenize(h) for h in HYPS], [[tokenize(r) for r in refs] for refs in REFS]


def coco_inputs():
    hyps, refs = tokens()
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    return gts, res


def test_scores_equal_pycocoevalcap():
    hyps, refs = tokens()
    ours = caption_scores(hyps, refs, meteor=False)
    gts, res = coco_inputs()
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        assert ours[f"bleu{n + 1}"] == pytest.approx(100 * bleu[n])
    assert ours["rouge_l"] == pytest.approx(100 * Rouge().compute_score(gts, res)[0])
    assert ours["cider"] == pytest.approx(100 * Cider().compute_score(gts, res)[0])
    assert "meteor" not in ours
    assert 0 < ours["bleu4"] < ours["bleu1"] <= 100


def test_perfect_hypotheses_score_100():
    refs = [[tokenize(r) for r in rs] for rs in REFS]
    scores = caption_scores([rs[0] for rs in refs], refs, meteor=False)
    assert scores["bleu4"] == pytest.approx(100.0)
    assert scores["rouge_l"] == pytest.approx(100.0)


def test_strings_and_mismatched_lengths_are_refused():
    hyps, refs = tokens()
    with pytest.raises(TypeError, match="tokens"):
        caption_scores(HYPS, refs, meteor=False)
    with pytest.raises(ValueError, match="3 hypotheses but 2 reference lists"):
        caption_scores(hyps, refs[:2], meteor=False)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs java")
def test_meteor_with_java():
    hyps, refs = tokens()
    scores = caption_scores(hyps[:2], refs[:2], meteor=True)
    assert 0 < scores["meteor"] < 100


def test_perplexity():
    assert perplexity(math.log(40.12)) == pytest.approx(40.12)  # seed 002
    assert perplexity(0.0) == 1.0


def test_region_boxes_row_major():
    cells = region_boxes(2, (100, 60))
    np.testing.assert_allclose(cells, [[0, 0, 50, 30], [50, 0, 100, 30], [0, 30, 50, 60], [50, 30, 100, 60]])


def test_attention_localisation_on_hand_made_boxes():
    # 4x4 grid on a 40x40 image: cells of 10 px. One red circle in the top-left cell,
    # one blue square covering the bottom-right 2x2 cells.
    objects = [[{"box": [0, 0, 10, 10], "words": ["red", "circle"]},
                {"box": [20, 20, 40, 40], "words": ["blue", "square"]}]]  # fmt: skip
    words = [["a", "red", "circle", "and", "a", "blue", "square"]]
    alphas = torch.full((7, 16), 0.01)
    alphas[1, 0] = 1.0  # red -> top-left cell: hit
    alphas[2, 5] = 1.0  # circle -> cell (1, 1): miss
    alphas[5, 15] = 1.0  # blue -> bottom-right: hit
    alphas[6, 10] = 1.0  # square -> cell (2, 2): inside the square's box: hit
    out = attention_localisation(words, [alphas], objects, [(40, 40)], grid=4)
    assert out["object_words"] == 4
    assert out["attention_localisation"] == pytest.approx(3 / 4)
    assert out["chance"] == pytest.approx((1 / 16 + 1 / 16 + 4 / 16 + 4 / 16) / 4)


def test_attention_localisation_errors():
    objects = [[{"box": [0, 0, 10, 10], "words": ["red"]}]]
    with pytest.raises(ValueError, match="shape"):
        attention_localisation([["red"]], [torch.ones(1, 9)], objects, [(40, 40)], grid=4)
    with pytest.raises(ValueError, match="needs attention weights"):
        attention_localisation([["red"]], [None], objects, [(40, 40)], grid=4)
    assert attention_localisation([["a"]], [torch.ones(1, 16)], objects, [(40, 40)], 4)["object_words"] == 0
