"""What the fused kernel can hold, known without importing Triton."""

MAX_HEAD_DIM = 64
"""The widest head the Triton kernel takes: its recurrent block R (and dR) stays on-chip."""
