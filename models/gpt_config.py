"""Configuration of the decoder-only GPT model (the modules arrive with the train stage)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GPTConfig:
    """Shape of a GPT-2 style decoder-only transformer (nanoGPT's ``GPTConfig``)."""

    n_layer: int = 4
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide ``n_embd``."""
    n_embd: int = 128
    """Width of the residual stream (embedding size C)."""
    block_size: int = 256
    """Context length T in tokens; must not exceed the shards' block size."""
    vocab_size: int = 0
    """Vocabulary size; 0 means "take it from the shards' manifest" at training time."""
    dropout: float = 0.0
    """Dropout probability on attention and residual paths (0 for pre-training)."""
    bias: bool = False
    """Use bias terms in Linear and LayerNorm layers (GPT-2 did; off is slightly better)."""

    def __post_init__(self) -> None:
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}; "
                "pick n_embd as a multiple of n_head"
            )
        if self.vocab_size < 0:
            raise ValueError(
                f"vocab_size must be >= 0 (0 = from the manifest), got {self.vocab_size}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
