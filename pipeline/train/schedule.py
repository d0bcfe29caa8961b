"""Learning-rate schedule and the per-rank runtime settings of training (device, threads,
determinism, autocast). Pure functions of their arguments; no Horovod here.

The schedule is nanoGPT's: linear warm-up to the peak ``lr``, then a half cosine down to
``min_lr`` at ``max_steps``, flat at ``min_lr`` after that. It depends only on the step
number, so a resumed run continues it exactly.
"""

from __future__ import annotations

import contextlib
import math
import os
from typing import Any

import torch


def lr_at(step: int, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (1-based: the first update is step 1).

    * ``1 <= step <= warmup_steps``: ``lr * step / warmup_steps`` (linear warm-up);
    * ``warmup_steps < step <= max_steps``: cosine from ``lr`` down to ``min_lr``, reaching
      ``min_lr`` exactly at ``max_steps``;
    * ``step > max_steps``: ``min_lr``.

    Raises:
        ValueError: ``step`` < 1, ``max_steps`` < 1, ``warmup_steps`` < 0, or not
            ``0 <= min_lr <= lr``.
    """
    if step < 1:
        raise ValueError(f"step must be >= 1 (the first update is step 1), got {step}")
    if max_steps < 1 or warmup_steps < 0:
        raise ValueError(
            f"need max_steps >= 1 and warmup_steps >= 0, got {max_steps}, {warmup_steps}"
        )
    if not 0 <= min_lr <= lr:
        raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={min_lr} lr={lr}")
    if step <= warmup_steps:
        return lr * step / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)  # in (0, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """The device of this rank: ``cuda:<local_rank>`` or ``cpu``.

    ``auto`` takes CUDA when present. (The CUDA device itself is pinned by
    :func:`pipeline.train.dist.init`.)

    Raises:
        ValueError: ``cuda`` requested on a machine without CUDA, or an unknown name.
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device {requested!r} is not auto, cpu or cuda")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "train.device=cuda but this machine has no CUDA device; use train.device=auto or cpu"
        )
    if requested != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def threads_per_rank(local_size: int, cpus: int | None = None) -> int:
    """CPU threads for one rank: the host's cores shared evenly by its ``local_size`` ranks
    (at least 1). A fixed count per rank keeps CPU runs reproducible."""
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) or os.cpu_count() or 1)
    return max(1, cpus // max(1, local_size))


def configure_runtime(device: torch.device, threads: int) -> None:
    """Per-process settings for reproducible training.

    On CPU: ``threads`` intra-op threads and ``torch.use_deterministic_algorithms(True)``
    (same seed, same thread count => bitwise-identical runs). On CUDA: TF32 matmuls are
    allowed (bf16 autocast does the heavy work anyway) and determinism is left off (fused
    attention kernels have no deterministic backward).
    """
    if device.type == "cpu":
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True)
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device: torch.device) -> Any:
    """The forward-pass precision context: bf16 autocast on CUDA, plain fp32 on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
