"""The one tokenizer: lowercase, letters and digits, punctuation and apostrophes split off."""

import pytest

from course_utils.sequence.text import detokenize, tokenize


def test_lowercase_and_punctuation_dropped():
    assert tokenize("A dog, running; on the GRASS!") == ["a", "dog", "running", "on", "the", "grass"]


def test_french_accents_kept_and_apostrophes_split():
    expected = ["l", "arbre", "à", "gauche", "d", "une", "étoile", "verte"]
    assert tokenize("L'arbre à gauche d'une Étoile verte.") == expected
    assert tokenize("l’arbre") == ["l", "arbre"]  # typographic apostrophe too


def test_hyphens_and_digits():
    assert tokenize("au-dessus de 3 chiens") == ["au", "dessus", "de", "3", "chiens"]


def test_decomposed_accents_are_normalised():
    decomposed = "e\u0301toile"  # e + combining acute accent
    assert tokenize(decomposed) == ["étoile"]


def test_underscores_and_empty():
    assert tokenize("snake_case") == ["snake", "case"]
    assert tokenize("  ... ") == []


def test_not_a_string():
    with pytest.raises(TypeError, match="expects a str"):
        tokenize(["a", "b"])


def test_detokenize():
    assert detokenize(["a", "red", "circle"]) == "a red circle"
