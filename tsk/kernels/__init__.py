"""Sequence operators, each with a `reference`, a fast `torch` and a `triton` path.

`backend="auto"` picks Triton for CUDA tensors and the fast torch path otherwise.
"""
