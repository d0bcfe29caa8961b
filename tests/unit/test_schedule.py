"""LR schedule and per-rank runtime settings of pipeline/train/schedule.py."""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from pipeline.train.schedule import autocast, lr_at, pick_device, threads_per_rank

S = dict(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)


def test_linear_warmup_reaches_the_peak() -> None:
    assert [lr_at(s, **S) for s in (1, 5, 10)] == pytest.approx([1e-4, 5e-4, 1e-3])


def test_cosine_decay_to_min_lr_then_flat() -> None:
    assert lr_at(60, **S) == pytest.approx((1e-3 + 1e-4) / 2)  # half way: the mean
    assert lr_at(110, **S) == pytest.approx(1e-4)
    assert lr_at(500, **S) == 1e-4
    after = [lr_at(s, **S) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))  # never rises
    assert all(1e-4 <= x <= 1e-3 for x in after)


def test_cosine_shape() -> None:
    step = 35  # a quarter of the decay
    expected = 1e-4 + 0.5 * (1 + math.cos(math.pi * 0.25)) * 9e-4
    assert lr_at(step, **S) == pytest.approx(expected)


def test_no_warmup_and_constant() -> None:
    assert lr_at(1, lr=1.0, min_lr=0.0, warmup_steps=0, max_steps=2) == pytest.approx(0.5)
    assert lr_at(7, lr=0.1, min_lr=0.1, warmup_steps=3, max_steps=9) == pytest.approx(0.1)


def test_warmup_longer_than_the_run() -> None:
    assert lr_at(5, lr=1.0, min_lr=0.1, warmup_steps=30, max_steps=6) == pytest.approx(5 / 30)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(S, step=0), "first update is step 1"),
        (dict(S, step=1, min_lr=1.0), "min_lr <= lr"),
        (dict(S, step=1, max_steps=0), "max_steps >= 1"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    step = kwargs.pop("step")
    with pytest.raises(ValueError, match=message):
        lr_at(step, **kwargs)


def test_threads_are_shared_by_the_ranks_of_a_host() -> None:
    assert threads_per_rank(1, cpus=2) == 2
    assert threads_per_rank(2, cpus=2) == 1
    assert threads_per_rank(4, cpus=2) == 1
    assert threads_per_rank(8, cpus=64) == 8


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not auto, cpu or cuda"):
        pick_device("tpu")
    if torch.cuda.is_available():
        assert pick_device("auto", 0) == torch.device("cuda", 0)
    else:
        assert pick_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda")


def test_autocast_is_fp32_on_cpu() -> None:
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
