"""videopure: diffusion purification (DiffPure) for video action recognition and its robustness evaluation."""

__version__ = "0.1.0"
