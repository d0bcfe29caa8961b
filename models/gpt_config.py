"""Configuration of the decoder-only GPT model built by :mod:`models.gpt`."""

from __future__ import annotations

from dataclasses import dataclass, replace


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

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``n_embd // n_head`` (Q in the FLOPs estimate)."""
        return self.n_embd // self.n_head

    def resolved(self, vocab_size: int | None = None) -> GPTConfig:
        """Return a copy whose ``vocab_size`` is fixed, ready to build a model from.

        ``vocab_size`` is the tokenizer's vocabulary (the manifest's ``vocab_size``). A
        config with ``vocab_size`` 0 takes it; an explicit ``vocab_size`` is kept (it may be
        padded above the tokenizer's, e.g. 50304 for 50257) but must hold every token id.

        Raises:
            ValueError: ``vocab_size`` is 0 in the config and none (or < 1) is given, or the
                given vocabulary is larger than the config's explicit ``vocab_size``.
        """
        if vocab_size is not None and vocab_size < 1:
            raise ValueError(f"vocabulary size must be >= 1, got {vocab_size}")
        if self.vocab_size == 0:
            if vocab_size is None:
                raise ValueError(
                    "model.vocab_size is 0 (take it from the manifest) but no vocabulary size "
                    "was given; pass the shards' manifest vocab_size or set model.vocab_size"
                )
            return replace(self, vocab_size=vocab_size)
        if vocab_size is not None and vocab_size > self.vocab_size:
            raise ValueError(
                f"vocabulary {vocab_size} larger than the model's {self.vocab_size}; "
                f"set model.vocab_size >= {vocab_size} or 0 to take it from the manifest"
            )
        return self
