"""Notebooks 04-05: a CNN image classifier, classic architectures, class-activation maps, transfer learning."""
