"""speechcompress: train speech models small and fast without losing quality."""
__version__ = "0.1.0"
