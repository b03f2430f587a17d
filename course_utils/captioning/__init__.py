"""Notebooks 08-10: encoders, Show and Tell, Show Attend and Tell, training, decoding, metrics."""
