"""One tokenizer for the whole kit: vocabulary, training and metrics.

``tokenize("Un cercle rouge, à gauche d'une étoile.")``
-> ``['un', 'cercle', 'rouge', 'à', 'gauche', 'd', 'une', 'étoile']``

The policy, used everywhere so that a word counted in the vocabulary is the same word
the metrics compare:

* Unicode NFC normalisation, then lowercase (``É`` -> ``é``; accents are kept);
* a token is a run of Unicode letters or digits;
* everything else separates tokens and is dropped: spaces, punctuation, hyphens
  (``au-dessus`` -> ``au``, ``dessus``) and apostrophes (``l'arbre`` -> ``l``, ``arbre``).

Written by hand (one regular expression) instead of ``nltk.word_tokenize`` because
nltk's tokenizer needs a data download, and because notebook 07 teaches cleaning.
"""

from __future__ import annotations

import re
import unicodedata

_TOKEN = re.compile(r"[^\W_]+")  # \w minus the underscore: Unicode letters and digits


def normalize(text: str) -> str:
    """NFC-normalised, lowercased text (``"Étoile"`` -> ``"étoile"``)."""
    return unicodedata.normalize("NFC", text).lower()


def tokenize(text: str) -> list[str]:
    """Lowercased runs of letters/digits of ``text``; punctuation and apostrophes split and drop."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
    return _TOKEN.findall(normalize(text))


def detokenize(tokens: list[str]) -> str:
    """Tokens joined by spaces: the form in which the kit prints generated captions."""
    return " ".join(tokens)
