"""LLRFormer: landmark detection on full-length lower-limb radiographs, and its attention."""

__version__ = "0.1.0"
