"""Train benchmark: tokens/s of ``pipeline train -np 1`` vs a plain PyTorch loop.

Usage (from the repository root)::

    .venv/bin/python benchmarks/train.py --data SHARDS_DIR [--config conf/local.yaml]
        [--steps 30] [--skip 5] [--rounds 3] [--peak-tflops X] [key.sub=value ...]

In one run it:

1. runs ``pipeline train CONFIG --data SHARDS -np 1`` for ``--steps`` steps in a fresh
   process (evaluation only at the start and the end, one checkpoint at the end) and
   reads the per-step ``tokens_per_s`` and ``data_wait`` of ``metrics.jsonl``;
2. runs a plain single-process PyTorch loop in this process over the same model config,
   the same global batches (read into memory before timing), the same AdamW parameter
   groups, gradient accumulation, clipping, precision and thread count: no Horovod, no
   dataset, no metrics, no checkpoints;
3. prints a markdown table of the medians over the steps after the first ``--skip``
   (warm-up), the ratio of the two, and the data-wait fraction. The two loops alternate
   for ``--rounds`` rounds and the best round of each is compared, since a shared machine's
   load changes under a benchmark (each round's figure is printed too). On CUDA it adds the model
   FLOPs utilisation: ``flops_per_token x tokens/s`` over the GPU's peak bf16 FLOP/s
   (``--peak-tflops``, or a table of known GPUs).

Targets: ours >= 0.9x the plain loop; data wait <= 5% of step time; printed with
pass/FAIL (``--json PATH`` also writes the numbers and targets as data,
:mod:`benchmarks.results`). It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import Results  # noqa: E402
from models.gpt import GPT  # noqa: E402
from pipeline.shards.reader import ShardDataset  # noqa: E402
from pipeline.stage_config import load_config  # noqa: E402
from pipeline.train.schedule import (  # noqa: E402
    autocast,
    configure_runtime,
    pick_device,
    threads_per_rank,
)

# Dense bf16 tensor-core peaks (FLOP/s) of common GPUs, by a substring of their name.
PEAK_BF16 = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
    "A10": 125e12,
    "4090": 165e12,
}


def ours(config: str, data: str, steps: int, overrides: list[str]) -> list[dict]:
    """Run ``pipeline train -np 1`` for ``steps`` steps; return its step metrics rows."""
    with tempfile.TemporaryDirectory(prefix="bench-train-") as run:
        cmd = [
            sys.executable,
            "-m",
            "pipeline.cli",
            "train",
            config,
            "--data",
            data,
            "--run",
            run,
            "-np",
            "1",
            f"train.max_steps={steps}",
            "train.eval_every=0",
            "train.checkpoint_every=0",
            "train.eval_batches=1",
            *overrides,
        ]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.exit(f"pipeline train failed:\n{proc.stderr[-3000:]}")
        lines = Path(run, "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r.get("loss") is not None]


def plain(config: str, data: str, steps: int, overrides: list[str]) -> tuple[list[float], GPT]:
    """A plain PyTorch loop over the same batches; return per-step seconds and the model."""
    cfg = load_config(config, [*overrides, "train.np=1", f"train.max_steps={steps}"])
    tc = cfg.train
    device = pick_device(tc.device)
    configure_runtime(device, threads_per_rank(1))
    torch.use_deterministic_algorithms(False)  # plain PyTorch defaults
    ds = ShardDataset(
        data, "train", global_batch=tc.global_batch, seed=tc.seed, block_size=cfg.model.block_size
    )
    batches = [tuple(t.to(device) for t in ds.next_batch()) for _ in range(steps)]
    torch.manual_seed(tc.seed)
    model = GPT(cfg.model.resolved(ds.manifest.vocab_size)).to(device)
    opt = torch.optim.AdamW(
        model.param_groups(tc.weight_decay), lr=tc.lr, betas=(0.9, 0.95), eps=1e-8
    )
    forward = torch.compile(model) if tc.compile else model
    accum, mb = tc.global_batch // tc.micro_batch, tc.micro_batch
    seconds = []
    for x, y in batches:
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        for i in range(accum):
            with autocast(device):
                _, loss = forward(x[i * mb : (i + 1) * mb], y[i * mb : (i + 1) * mb])
            (loss / accum).backward()
            total += loss.detach()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        opt.zero_grad()
        (total / accum).item()  # the same host sync as the trainer's loss check
        seconds.append(time.perf_counter() - started)
    return seconds, model


def main(argv: list[str] | None = None) -> int:
    """Run the train benchmark; print its table and targets (and write ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="shards folder")
    p.add_argument("--config", default=str(ROOT / "conf" / "local.yaml"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--skip", type=int, default=5, help="warm-up steps left out of the medians")
    p.add_argument("--rounds", type=int, default=3, help="alternate rounds of the two loops")
    p.add_argument("--peak-tflops", type=float, help="GPU peak bf16 TFLOP/s for the MFU")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. train.micro_batch=8")
    a = p.parse_args(argv)
    results = Results("train")

    cfg = load_config(a.config, [*a.overrides, "train.np=1"])
    tokens = cfg.train.global_batch * cfg.model.block_size
    ours_tps, plain_tps, waits = [], [], []
    for r in range(a.rounds):  # alternate, so that both see the same machine load
        rows = ours(a.config, a.data, a.steps, a.overrides)[a.skip :]
        ours_tps.append(statistics.median(row["tokens_per_s"] for row in rows))
        waits.append(statistics.median(row["data_wait"] for row in rows))
        seconds, model = plain(a.config, a.data, a.steps, a.overrides)
        plain_tps.append(statistics.median(tokens / s for s in seconds[a.skip :]))
        print(
            f"round {r + 1}: ours {ours_tps[-1]:,.0f} tokens/s, plain {plain_tps[-1]:,.0f}, "
            f"data wait {waits[-1]:.2%}",
            file=sys.stderr,
            flush=True,
        )
    best_ours, best_plain = max(ours_tps), max(plain_tps)
    wait = waits[ours_tps.index(best_ours)]
    device = pick_device(cfg.train.device)

    print(
        f"\nmodel {model.num_params() / 1e6:.2f}M parameters, global batch "
        f"{cfg.train.global_batch} x {cfg.model.block_size} tokens, micro batch "
        f"{cfg.train.micro_batch}; device {device}; {torch.get_num_threads()} CPU thread(s); "
        f"median over steps {a.skip + 1}..{a.steps} of each round, best of {a.rounds} "
        "alternating rounds\n"
    )
    print("| loop | tokens/s (best round) | vs plain | data wait | tokens/s per round |")
    print("|---|---:|---:|---:|---|")
    per = ", ".join(f"{v:,.0f}" for v in ours_tps)
    print(
        f"| `pipeline train -np 1` | {best_ours:,.0f} | {best_ours / best_plain:.2f}x | "
        f"{wait * 100:.2f}% | {per} |"
    )
    per = ", ".join(f"{v:,.0f}" for v in plain_tps)
    print(f"| plain PyTorch loop | {best_plain:,.0f} | 1.00x | - | {per} |")
    results.table(
        "loops",
        [
            {
                "loop": "pipeline train -np 1",
                "tokens_per_s": best_ours,
                "vs_plain": best_ours / best_plain,
                "data_wait": wait,
                "rounds_tokens_per_s": ours_tps,
            },
            {
                "loop": "plain PyTorch loop",
                "tokens_per_s": best_plain,
                "vs_plain": 1.0,
                "data_wait": None,
                "rounds_tokens_per_s": plain_tps,
            },
        ],
    )
    print()
    print(
        results.target(
            "pipeline train tokens/s ÷ plain loop tokens/s", best_ours / best_plain, 0.9
        ).line()
    )
    print(results.target("data wait share of step time", wait, 0.05, higher=False).line())
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = (
            a.peak_tflops * 1e12
            if a.peak_tflops
            else next((v for k, v in PEAK_BF16.items() if k in name), None)
        )
        if peak is None:
            results.notes.append(f"MFU: unknown peak for {name}; pass --peak-tflops")
        else:
            fpt = model.flops_per_token()
            results.notes.append(
                f"MFU on {name} (peak {peak / 1e12:.0f} TFLOP/s bf16): ours "
                f"{fpt * best_ours / peak:.1%}, plain {fpt * best_plain / peak:.1%}"
            )
        print("\n" + results.notes[-1])
    if a.json:
        results.write(a.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
