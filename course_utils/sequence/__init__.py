"""Notebook 06: recurrent cells written from their equations, and a word-level language model."""
