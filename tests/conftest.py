"""Shared test settings: headless plotting, fast mode, and a private data root."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["COURSE_FAST"] = "1"
