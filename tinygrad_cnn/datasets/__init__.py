"""Datasets bundled with tinygrad_cnn (loaded offline-first, checksummed)."""
from . import mnist

__all__ = ["mnist"]
