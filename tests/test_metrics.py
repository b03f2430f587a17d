"""Caption metrics equal pycocoevalcap's on the same inputs; localisation on hand-made boxes."""

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from course_utils.captioning.metrics import (
    attention_localisation,
    caption_scores,
    perplexity,
    ptb_tokenize,
    region_boxes,
    score_lines,
)
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
    assert "meteor" not in ours and ours["protocol"] == "kit-tokenizer"
    assert 0 < ours["bleu4"] < ours["bleu1"] <= 100


def test_perfect_hypotheses_score_100():
    refs = [[tokenize(r) for r in rs] for rs in REFS]
    scores = caption_scores([rs[0] for rs in refs], refs, meteor=False)
    assert scores["bleu4"] == pytest.approx(100.0)
    assert scores["rouge_l"] == pytest.approx(100.0)


def test_token_references_use_the_kit_tokenizer_and_say_so():
    hyps, refs = tokens()
    assert caption_scores(hyps, refs, meteor=False)["protocol"] == "kit-tokenizer"
    with pytest.raises(ValueError, match="pass strings"):
        caption_scores(hyps, refs, meteor=False, protocol="coco-ptb")


def test_raw_captions_with_the_kit_tokenizer_equal_pre_tokenised_ones():
    hyps, refs = tokens()
    raw = caption_scores(HYPS, REFS, meteor=False, protocol="kit-tokenizer")
    pre = caption_scores(hyps, refs, meteor=False)
    assert raw == pre


def test_bad_inputs_are_refused():
    hyps, refs = tokens()
    with pytest.raises(ValueError, match="3 hypotheses but 2 reference lists"):
        caption_scores(hyps, refs[:2], meteor=False)
    with pytest.raises(TypeError, match="mix"):
        caption_scores(hyps, [refs[0], REFS[1], refs[2]], meteor=False)
    with pytest.raises(ValueError, match="protocol must be"):
        caption_scores(HYPS, REFS, meteor=False, protocol="nltk")


def test_score_lines_end_with_the_protocol():
    hyps, refs = tokens()
    lines = score_lines(caption_scores(hyps, refs, meteor=False))
    assert lines[0].startswith("bleu1: ") and lines[-1] == "protocol: kit-tokenizer"


# Captions with what real datasets have and the kit's tokenizer treats differently from the
# COCO evaluation's: possessives, contractions, hyphens, capitals, brackets, punctuation.
COCO_REFS = [
    ["A man's T-shirt is red.", "There's a man in a red T-shirt (top-right).", "A MAN wearing a red shirt, smiling."],
    ["Two dogs play in the snow-covered park.", "Dogs [two of them] running in snow.", "The dog's friend is a dog!"],
    ["A child in a pink dress is climbing up a set of stairs in an entry way .",
     "A little girl climbing into a wooden playhouse", "A girl going into a wooden building ."],
]  # fmt: skip
COCO_HYPS = ["a man in a red t shirt", "two dogs are running in the snow", "A girl climbs the stairs."]


class _Annotations:
    """The two things ``COCOEvalCap`` reads from a ``pycocotools.COCO`` object."""

    def __init__(self, captions):
        self.imgToAnns = {i: [{"image_id": i, "caption": c} for c in caps] for i, caps in enumerate(captions)}

    def getImgIds(self):
        return list(self.imgToAnns)


class _NoSpice:
    """SPICE downloads Stanford models at first use (offline: impossible); the kit does not report it."""

    def compute_score(self, gts, res):
        return 0.0, [0.0] * len(gts)

    def method(self):
        return "SPICE"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("java") is None, reason="the COCO protocol needs java")
def test_coco_protocol_equals_cocoevalcap(monkeypatch):
    import pycocoevalcap.eval as coco_eval
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    package_files = sorted(Path(ptb.__file__).parent.iterdir())
    ours = caption_scores(COCO_HYPS, COCO_REFS, meteor=True)
    assert ours["protocol"] == "coco-ptb"
    assert sorted(Path(ptb.__file__).parent.iterdir()) == package_files, "no file written next to the jar"
    monkeypatch.setattr(coco_eval, "Spice", _NoSpice)
    official = coco_eval.COCOEvalCap(_Annotations(COCO_REFS), _Annotations([[h] for h in COCO_HYPS]))
    official.evaluate()
    names = {"bleu1": "Bleu_1", "bleu2": "Bleu_2", "bleu3": "Bleu_3", "bleu4": "Bleu_4", "meteor": "METEOR",
             "rouge_l": "ROUGE_L", "cider": "CIDEr"}  # fmt: skip
    for ours_name, coco_name in names.items():
        assert ours[ours_name] == pytest.approx(100 * official.eval[coco_name], abs=0.01), ours_name
    kit = caption_scores(COCO_HYPS, COCO_REFS, meteor=False, protocol="kit-tokenizer")
    assert kit["protocol"] == "kit-tokenizer" and abs(kit["bleu4"] - ours["bleu4"]) > 1  # the protocols differ


@pytest.mark.skipif(shutil.which("java") is None, reason="the COCO tokenizer needs java")
def test_ptb_tokenizer_runs_in_a_temporary_folder():
    assert ptb_tokenize(["A man's T-shirt (red).", "", "Deux étoiles"]) == ["a man 's t-shirt -lrb- red -rrb-", "",
                                                                            "deux étoiles"]  # fmt: skip


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
