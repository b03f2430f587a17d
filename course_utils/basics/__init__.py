"""Notebooks 01-03: images as arrays, filtering and convolution, neural networks and optimisers."""
