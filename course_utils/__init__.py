"""Shared code of the course."""
