"""A GPT-2 style decoder-only transformer, after nanoGPT's ``model.py``.

Token and learned position embeddings, ``n_layer`` pre-norm blocks (causal self-attention
and a 4x GELU MLP, each on a residual), a final LayerNorm and an ``lm_head`` tied to the
token embedding. Attention goes through ``F.scaled_dot_product_attention`` so that PyTorch
picks a fused kernel (flash / memory-efficient on CUDA).

Notation in the shape comments: B batch, T sequence length (<= block_size), C n_embd,
H n_head, Q head size (C // H), V vocab_size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from models.gpt_config import GPTConfig

GREEDY_BELOW = 1e-5
"""A ``generate`` temperature below this picks the argmax instead of sampling."""


class CausalSelfAttention(nn.Module):
    """Multi-head masked self-attention: each position attends to itself and the past."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        # key, query and value projections for all heads, in one matmul
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # output projection back into the residual stream
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()  # (B, T, C)
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 x (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, Q)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, Q)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))  # (B, T, C)


class MLP(nn.Module):
    """Position-wise feed-forward network: C -> 4C -> GELU -> C."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gelu(self.c_fc(x))  # (B, T, 4C)
        return self.dropout(self.c_proj(x))  # (B, T, C)


class Block(nn.Module):
    """One pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x


class GPT(nn.Module):
    """The language model: token ids (B, T) in, next-token logits (B, T, V) out."""

    def __init__(self, config: GPTConfig) -> None:
        """Build the modules and initialise them GPT-2 style.

        Raises:
            ValueError: ``config.vocab_size`` is 0; resolve it first with
                :func:`build_model` or :meth:`GPTConfig.resolved`.
        """
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError(
                "GPTConfig.vocab_size is 0 (take it from the manifest); build the model with "
                "build_model(config, vocab_size=<manifest vocab_size>)"
            )
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embedding
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embedding
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): the output projection is the token embedding.
        self.transformer["wte"].weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2L),
        # two per block, so the residual's variance does not grow with depth.
        residual_std = 0.02 / math.sqrt(2 * config.n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-token logits for every position, and the mean cross-entropy if asked.

        Args:
            idx: token ids, int64 (or int32), shape (B, T) with 1 <= T <= block_size.
                Ids are not range-checked here (too costly per step); the shards'
                manifest guarantees ids < vocab_size.
            targets: next-token ids, same shape as ``idx``, or None.

        Returns:
            ``(logits, loss)``: logits (B, T, V), float32 (the autocast dtype under
            autocast); loss a float32 scalar, the cross-entropy averaged over all B*T
            positions, or None when ``targets`` is None.

        Raises:
            ValueError: ``idx`` is not 2-D, T is 0 or exceeds ``block_size``, or
                ``targets`` has another shape.
            TypeError: ``idx`` is not an integer tensor of int64 or int32.
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"idx must hold int64 or int32 token ids, got {idx.dtype}")
        B, T = idx.size()
        if not 1 <= T <= self.config.block_size:
            raise ValueError(
                f"sequence length {T} must be in [1, block_size {self.config.block_size}]; "
                "crop the input to the last block_size tokens or build a longer model"
            )
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(
                f"targets shape {tuple(targets.shape)} differs from idx shape {tuple(idx.shape)}"
            )

        pos = torch.arange(T, dtype=torch.long, device=idx.device)  # (T,)
        t = self.transformer
        tok_emb = t["wte"](idx)  # (B, T, C)
        pos_emb = t["wpe"](pos)  # (T, C), broadcast over B
        x = t["drop"](tok_emb + pos_emb)  # (B, T, C)
        for block in cast(nn.ModuleList, t["h"]):
            x = block(x)  # (B, T, C)
        x = t["ln_f"](x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)

        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(B * T, -1).float(), targets.reshape(B * T).long()
            )  # ()
        return logits, loss

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW parameter groups: decay matrices and embeddings, not biases or norms.

        Every trainable parameter appears exactly once (the tied embedding/lm_head weight
        once). Tensors with ``dim() >= 2`` (Linear weights, embeddings) get
        ``weight_decay``; 1-D tensors (biases, LayerNorm weights and biases) get 0.

        Returns:
            ``[{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]``, ready for ``torch.optim.AdamW``.

        Raises:
            ValueError: ``weight_decay`` is negative.
        """
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        params = [p for p in self.parameters() if p.requires_grad]  # shared ones once
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters, the tied token embedding counted once.

        With ``non_embedding`` the position embedding is left out (nanoGPT's convention);
        the token embedding stays in, since as ``lm_head`` it does a matmul per token.
        """
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= cast(nn.Embedding, self.transformer["wpe"]).weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token (forward + backward), for tokens/s -> MFU.

        ``6 * N + 12 * L * H * Q * T``, N = :meth:`num_params` (non-embedding): 6N for the
        weight matmuls (2 forward, 4 backward) plus the attention score and value matmuls.
        The estimate of the PaLM paper (Chowdhery et al. 2022, appendix B), as used by
        nanoGPT's ``estimate_mfu``. T is ``seq_len``, the block size by default.
        """
        cfg = self.config
        T = cfg.block_size if seq_len is None else seq_len
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * T

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        eos_id: int | None = None,
        *,
        top_p: float | None = None,
        repetition_penalty: float = 1.0,
        no_repeat_ngram: int = 0,
        logits_processor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Continue each prompt by ``max_new_tokens`` tokens, one forward pass per token.

        The context fed to the model is cropped to its last ``block_size`` tokens. The next
        token's logits go through, in order: the repetition penalty (CTRL, Keskar et al.
        2019, as in Hugging Face's ``RepetitionPenaltyLogitsProcessor``: the logit of every
        token already in the context is divided by ``repetition_penalty`` when positive,
        multiplied when negative), the n-gram ban (Paulus et al. 2017, as Hugging Face's
        ``NoRepeatNGramLogitsProcessor``: a token that would repeat an ``no_repeat_ngram``-
        gram of the sequence is excluded), ``logits_processor`` (a caller's rule, e.g.
        :func:`pipeline.train.export.no_blank_line_runs`), division by ``temperature`` (below
        :data:`GREEDY_BELOW`, incl. 0: argmax of the penalised logits), the ``top_k`` cut and
        the nucleus cut (Holtzman et al. 2020: the fewest most likely tokens whose
        probability sums to ``top_p``). The draw is ``torch.multinomial`` from ``generator``
        (on the model's device), so a seeded generator repeats its output. The model runs in
        eval mode (no dropout); its mode is restored after.

        Args:
            idx: prompts, int64, shape (B, T0) with T0 >= 1 (may exceed block_size).
            max_new_tokens: tokens to add, >= 0.
            temperature: >= 0; 1 samples from the model's distribution.
            top_k: keep only the k most likely tokens (k >= 1), or None for all.
            generator: random source for sampling, or None for the global one.
            eos_id: with B == 1, stop after this token is produced (it is included).
            top_p: keep the smallest set of likely tokens of probability >= top_p, in
                (0, 1], or None for all.
            repetition_penalty: >= 1; 1 leaves the logits alone.
            no_repeat_ngram: n >= 0; 0 allows any repeat.
            logits_processor: ``f(idx, logits) -> logits`` with ``idx`` (B, T) the
                sequences so far and ``logits`` (B, V) float32 the next token's; -inf
                excludes a token. None for none.

        Returns:
            int64 tensor (B, T0 + n), the prompts followed by n <= max_new_tokens tokens
            (n < max_new_tokens only when ``eos_id`` was produced).

        Raises:
            ValueError: ``idx`` is not (B, T0) with T0 >= 1, ``max_new_tokens`` < 0,
                ``temperature`` < 0, ``top_k`` < 1, ``top_p`` outside (0, 1],
                ``repetition_penalty`` < 1, ``no_repeat_ngram`` < 0, or ``eos_id`` is
                given with B > 1.
        """
        if idx.dim() != 2 or idx.size(1) < 1:
            raise ValueError(f"idx must have shape (B, T0) with T0 >= 1, got {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
        if repetition_penalty < 1:
            raise ValueError(f"repetition_penalty must be >= 1, got {repetition_penalty}")
        if no_repeat_ngram < 0:
            raise ValueError(f"no_repeat_ngram must be >= 0, got {no_repeat_ngram}")
        if eos_id is not None and idx.size(0) != 1:
            raise ValueError(
                f"eos_id stops generation for a single prompt only, got a batch of {idx.size(0)}"
            )

        was_training = self.training
        self.eval()
        try:
            block_size = self.config.block_size
            for _ in range(max_new_tokens):
                idx_cond = idx[:, -block_size:]  # (B, min(T, block_size))
                logits, _ = self(idx_cond)  # (B, T', V)
                logits = logits[:, -1, :].float()  # (B, V): the next token's
                if repetition_penalty != 1:
                    seen = logits.gather(1, idx_cond)  # (B, T')
                    pen = repetition_penalty
                    seen = torch.where(seen > 0, seen / pen, seen * pen)
                    logits = logits.scatter(1, idx_cond, seen)  # (B, V)
                if no_repeat_ngram:
                    logits = _ban_repeated_ngrams(logits, idx, no_repeat_ngram)
                if logits_processor is not None:
                    logits = logits_processor(idx, logits)  # (B, V)
                if temperature < GREEDY_BELOW:
                    idx_next = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
                else:
                    logits = logits / temperature  # (B, V)
                    if top_k is not None:
                        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                        logits = logits.masked_fill(logits < kth, float("-inf"))  # (B, V)
                    if top_p is not None and top_p < 1:
                        logits = _nucleus(logits, top_p)
                    probs = F.softmax(logits, dim=-1)  # (B, V)
                    idx_next = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
                idx = torch.cat((idx, idx_next.to(idx.dtype)), dim=1)  # (B, T + 1)
                if eos_id is not None and int(idx_next) == eos_id:
                    break
        finally:
            self.train(was_training)
        return idx


def _nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """``logits`` (B, V) with -inf outside the smallest set of most likely tokens whose
    probabilities sum to >= ``top_p`` (the most likely token always stays)."""
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)  # (B, V)
    cumulative = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)  # (B, V)
    drop = cumulative - F.softmax(sorted_logits, dim=-1) >= top_p  # mass before it >= p
    drop = drop.scatter(1, order, drop)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def _ban_repeated_ngrams(logits: torch.Tensor, idx: torch.Tensor, n: int) -> torch.Tensor:
    """``logits`` (B, V) with -inf for every token that, appended to its row of ``idx``
    (B, T), would repeat an ``n``-gram already in that row."""
    if idx.size(1) < n:
        return logits
    out = logits.clone()
    for b, row in enumerate(idx.tolist()):
        prefix = tuple(row[len(row) - n + 1 :]) if n > 1 else ()
        banned = [
            row[i + n - 1] for i in range(len(row) - n + 1) if tuple(row[i : i + n - 1]) == prefix
        ]
        if banned:
            out[b, banned] = float("-inf")
    return out


def build_model(config: GPTConfig, vocab_size: int | None = None) -> GPT:
    """Build a :class:`GPT`, taking ``vocab_size`` (the manifest's) when the config has 0.

    Raises:
        ValueError: no vocabulary size is known (config 0, none given), or the given one
            is larger than the config's explicit ``vocab_size``
            ("vocabulary N larger than the model's M").
    """
    return GPT(config.resolved(vocab_size))
