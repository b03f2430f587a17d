"""Caption metrics: BLEU-1..4, METEOR, ROUGE-L, CIDEr, perplexity, attention localisation.

Scores follow one of two protocols, and every result says which (``scores["protocol"]``):

* ``coco-ptb`` (when ``java`` is on the PATH): the COCO caption evaluation, as papers
  report it. References and hypotheses are tokenised by the Stanford PTBTokenizer whose jar
  ships inside ``pycocoevalcap`` (lowercase; ``man's`` -> ``man 's``, ``T-shirt`` ->
  ``t-shirt``; punctuation tokens dropped), then scored by ``pycocoevalcap``'s BLEU, METEOR,
  ROUGE-L and CIDEr. Equal to ``pycocoevalcap.eval.COCOEvalCap`` on the same captions
  (``tests/test_metrics.py``).
* ``kit-tokenizer`` (no Java, or references that are already token lists): the kit's one
  tokenizer (``course_utils.sequence.text.tokenize``: ``man's`` -> ``man s``, ``T-shirt`` ->
  ``t shirt``) on both sides, then the same scorers. Close to, but not comparable with,
  published numbers: on captions full of hyphens and possessives it gave BLEU-4 61.1 where
  the COCO protocol gave 54.7.

Pass the raw reference captions (strings) to get the COCO protocol; hypotheses may be
strings or the decoder's words. Every score is on a 0-100 scale, as in papers
(``bleu4: 27.3``; NLTK's ``corpus_bleu`` prints the same BLEU on 0-1). BLEU is *corpus*
BLEU: n-gram counts are added over all images before the precisions are taken, which is
not the average of per-sentence BLEU (that average is lower and noisier).

METEOR runs the METEOR 1.5 jar (English only) and is computed when Java is present.
Neither jar writes into ``site-packages`` here: the tokenizer runs in a temporary folder
(pycocoevalcap's own wrapper writes its input file next to the jar, which fails where the
package folder is read-only), and METEOR reads from a pipe and writes no file.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

from course_utils.sequence.text import tokenize

PROTOCOLS = ("coco-ptb", "kit-tokenizer")
Caption = Union[str, Sequence[str]]  # a raw caption, or its words


def java_available() -> bool:
    """True if a ``java`` executable is on the PATH (the PTB tokenizer and METEOR need it)."""
    return shutil.which("java") is not None


def default_protocol() -> str:
    """``coco-ptb`` where Java runs the COCO tokenizer, else ``kit-tokenizer``."""
    return "coco-ptb" if java_available() else "kit-tokenizer"


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """The COCO evaluation's tokenisation of each sentence, as space-joined lowercase tokens.

    The same command and punctuation filter as ``pycocoevalcap.tokenizer.PTBTokenizer``,
    run with its jar, but with the input file in a temporary folder (see the module docstring).
    """
    from pycocoevalcap.tokenizer import ptbtokenizer as ptb

    jar = Path(ptb.__file__).resolve().with_name(ptb.STANFORD_CORENLP_3_4_1_JAR)
    with tempfile.TemporaryDirectory(prefix="coco_ptb_") as tmp:
        source = Path(tmp) / "sentences.txt"
        source.write_text("\n".join(s.replace("\n", " ") for s in sentences), encoding="utf-8")
        cmd = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
               "-encoding", "utf-8", source.name]  # fmt: skip
        done = subprocess.run(cmd, cwd=tmp, capture_output=True)
    lines = done.stdout.decode("utf-8").split("\n")
    if done.returncode != 0 or len(lines) < len(sentences):
        raise RuntimeError(f"PTB tokenizer failed ({done.stderr.decode(errors='replace').strip()[-200:]})")
    keep = lambda line: " ".join(w for w in line.rstrip().split(" ") if w not in ptb.PUNCTUATIONS)
    return [keep(line) for line in lines[: len(sentences)]]


def _text(caption: Caption) -> str:
    return caption if isinstance(caption, str) else " ".join(caption)


def _as_coco(
    hypotheses: Sequence[Caption], references: Sequence[Sequence[Caption]], protocol: Optional[str]
) -> tuple[dict[int, list[str]], dict[int, list[str]], str]:
    """The scorers' input ``{image_index: [sentence]}`` (tokens joined by spaces) and the protocol used."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists: one per image")
    kinds = set()
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(f"image {i}: references must be a non-empty list of captions")
        kinds |= {isinstance(r, str) for r in refs}
    if len(kinds) > 1:
        raise TypeError("references mix raw captions (str) and token lists: pass one kind")
    raw = kinds == {True}
    if protocol is None:  # token lists were tokenised by the kit already: PTB on them would not be COCO's
        protocol = default_protocol() if raw else "kit-tokenizer"
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "coco-ptb" and not raw:
        raise ValueError("the coco-ptb protocol tokenises the raw reference captions: pass strings, not tokens")
    if protocol == "coco-ptb" and not java_available():
        raise RuntimeError("the coco-ptb protocol needs java on the PATH (its tokenizer is a Java program)")
    sentences = [_text(h) for h in hypotheses] + [_text(r) for refs in references for r in refs]
    if protocol == "coco-ptb":
        tokenized = ptb_tokenize(sentences)  # one Java start for every sentence
    else:
        tokenized = [" ".join(tokenize(s)) for s in sentences]
    n = len(hypotheses)
    res = {i: [tokenized[i]] for i in range(n)}
    gts, at = {}, n
    for i, refs in enumerate(references):
        gts[i], at = tokenized[at : at + len(refs)], at + len(refs)
    return res, gts, protocol


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
    hypotheses: Sequence[Caption],
    references: Sequence[Sequence[Caption]],
    meteor: Optional[bool] = None,
    protocol: Optional[str] = None,
) -> dict[str, Any]:
    """Corpus scores (0-100) of ``hypotheses`` against ``references``, and the protocol used.

    ``hypotheses[i]``: the generated caption of image ``i`` (a string or a list of words);
    ``references[i]``: its reference captions, all raw strings (as in the dataset) or all
    token lists. ``protocol``: None = ``coco-ptb`` for raw references when Java exists, else
    ``kit-tokenizer``; or force one of :data:`PROTOCOLS`. ``meteor``: None = when Java is
    available, True/False to force. Keys: ``bleu1`` .. ``bleu4``, ``rouge_l``, ``cider``,
    ``meteor`` when computed (floats), and ``protocol`` (str).
    """
    res, gts, protocol = _as_coco(hypotheses, references, protocol)
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores: dict[str, Any] = {f"bleu{n + 1}": 100.0 * float(b) for n, b in enumerate(bleu)}
    scores["rouge_l"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    scores["cider"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    if meteor or (meteor is None and java_available()):
        value = meteor_score(res, gts)
        if value is not None:
            scores["meteor"] = 100.0 * value
    scores["protocol"] = protocol
    return scores


def score_lines(scores: Mapping[str, Any], digits: int = 1) -> list[str]:
    """``name: value`` lines of the scores that are present, then ``protocol: ...``."""
    keys = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")
    lines = [f"{k}: {scores[k]:.{digits}f}" for k in keys if k in scores]
    return lines + [f"protocol: {scores.get('protocol', 'unknown')}"]


def perplexity(mean_loss: float) -> float:
    """``exp(mean cross-entropy per token)`` (nats): the number of words the model hesitates
    between on average. The short report gives 40.12 on Flickr30k after 7 epochs."""
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
