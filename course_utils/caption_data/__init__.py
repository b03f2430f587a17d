"""Notebook 07: caption datasets, tokenisation, vocabulary, batches, feature cache, Word2Vec."""
