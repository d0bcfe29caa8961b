"""The parse, curate, featurise and train benchmarks in one go (what ``pipeline bench`` runs).

    .venv/bin/python benchmarks/run_all.py [all|parse|curate|featurise|train] [--quick] [--out DIR]

Runs ``benchmarks/parse.py`` (which keeps the pages of its input), then
``benchmarks/curate.py`` (on the same bench dump, which it parses and curates under
``local[1]``; targets: curate >= 0.5x parse pages/s per core, language ID >= 0.97,
near-duplicate precision >= 0.99), then ``benchmarks/featurise.py`` on the pages, then
``benchmarks/train.py`` on the shards it made, each in its own process with ``--json``
pointing into a temporary folder, and writes ``OUT/bench.json`` (machine, commands, exit
codes, seconds, each script's results as it wrote them, every target with its verdict, the
printed output) and ``OUT/bench.md`` (the machine, the targets, the printed tables). When
CUDA is present it also trains a ladder of model sizes on CPU and on the GPU
(:func:`cpu_gpu_crossover`) and reports the smallest size at which the GPU is faster and
the share of GPU step time spent copying batches to the device. Exit status 0 when every
benchmark ran, 1 otherwise. Benchmarks print and record; they never assert timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import Target, read_results  # noqa: E402

BENCHMARKS = ("parse", "curate", "featurise", "train")
# (n_layer, n_head, n_embd) of the CPU-vs-GPU ladder, smallest first
LADDER = ((2, 2, 64), (4, 4, 128), (6, 6, 256), (8, 8, 512), (12, 12, 768))


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, Python, torch/pyspark versions and the GPU if any."""
    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import pyspark

        out["pyspark"] = pyspark.__version__
    except ImportError:
        pass
    return out


def run_benchmark(name: str, cmd: list[str], results: Path) -> dict[str, Any]:
    """Run one benchmark script with ``--json results``; return its ``bench.json`` entry:
    command, exit code, seconds, printed output, and the results it wrote (None, with the
    reason in ``error``, when it failed or wrote none)."""
    cmd = [*cmd, "--json", str(results)]
    print(f"bench: {name}: {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    print(proc.stdout, flush=True)
    entry: dict[str, Any] = {
        "command": cmd,
        "returncode": proc.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "output": proc.stdout,
        "results": None,
        "error": None,
    }
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr, flush=True)
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output on stderr"]
        entry["error"] = f"exit status {proc.returncode}: {tail[0][:300]}"
    elif not results.is_file():
        entry["error"] = f"wrote no results to {results}"
    else:
        try:
            entry["results"] = read_results(results).to_dict()
        except ValueError as e:
            entry["error"] = str(e)
    return entry


def cpu_gpu_crossover(
    shards: str,
    steps: int = 10,
    batch: int = 8,
    *,
    ladder: tuple[tuple[int, int, int], ...] = LADDER,
    device: str = "cuda",
) -> dict[str, Any]:
    """Train each ``ladder`` size (``(n_layer, n_head, n_embd)``) for ``steps`` steps on
    the CPU and on ``device``; find where ``device`` wins and what share of its step time
    the host-to-device batch copy takes.

    Batches of ``batch`` sequences come from the shards through
    :class:`pipeline.shards.reader.ShardDataset` (int64 tensors, copied from pinned memory
    with ``non_blocking=True`` on CUDA); tokens/s is the median over the steps after one
    warm-up step. bf16 autocast on CUDA, fp32 on the CPU. ``device="cpu"`` runs the same
    measurement twice on the CPU (how the tests check it on machines without a GPU).

    Returns:
        ``{"rows": [{"n_layer", "n_head", "n_embd", "params", "cpu_tokens_per_s",
        "gpu_tokens_per_s", "copy_share"}, ...], "gpu_wins_from": first row where
        gpu_tokens_per_s > cpu_tokens_per_s, or None}``.

    Raises:
        RuntimeError: ``device`` is CUDA and CUDA is not available.
    """
    import torch

    from models.gpt import build_model
    from models.gpt_config import GPTConfig
    from pipeline.shards.format import load_manifest
    from pipeline.shards.reader import ShardDataset

    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("cpu_gpu_crossover needs CUDA")
    rows = []
    block_size = min(256, load_manifest(shards).block_size)
    for n_layer, n_head, n_embd in ladder:
        cfg = GPTConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size)
        row: dict[str, Any] = {"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd}
        for key, dev in (("cpu", "cpu"), ("gpu", device)):
            on_cuda = dev.startswith("cuda")
            ds = ShardDataset(shards, global_batch=batch, seed=0, block_size=cfg.block_size)
            torch.manual_seed(0)
            model = build_model(cfg, ds.manifest.vocab_size).to(dev)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            times, copies = [], []
            for _ in range(steps + 1):
                x, y = ds.next_batch()
                t0 = time.perf_counter()
                if on_cuda:
                    x = x.pin_memory().to(dev, non_blocking=True)
                    y = y.pin_memory().to(dev, non_blocking=True)
                    torch.cuda.synchronize()
                t1 = time.perf_counter()
                with torch.autocast("cuda", torch.bfloat16, enabled=on_cuda):
                    _, loss = model(x, y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                if on_cuda:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                copies.append(t1 - t0)
            times, copies = times[1:], copies[1:]
            med = statistics.median(times)
            row[f"{key}_tokens_per_s"] = round(batch * cfg.block_size / med)
            if key == "gpu":
                row["copy_share"] = round(sum(copies) / sum(times), 4)
            row["params"] = model.num_params()
            del model, opt
        rows.append(row)
    wins = [r for r in rows if r["gpu_tokens_per_s"] > r["cpu_tokens_per_s"]]
    return {"rows": rows, "gpu_wins_from": wins[0] if wins else None}


def run_bench(which: str, out: Path, quick: bool = False) -> dict[str, Any]:
    """Run the benchmarks (``parse``, ``curate``, ``featurise``, ``train`` or ``all``) into
    ``out``.

    Later benchmarks use the earlier ones' outputs (pages, then shards), so ``featurise``
    alone needs ``out/pages`` and ``train`` alone needs ``out/featurise/local[2]``.
    Returns the ``bench.json`` content.
    """
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    pages, shards = out / "pages", out / "featurise" / "local[2]"
    cmds = {
        "parse": [py, "benchmarks/parse.py", "--keep-pages", str(pages)]
        + (["--quick", "--rounds", "1"] if quick else []),
        "featurise": [
            py,
            "benchmarks/featurise.py",
            "--pages",
            str(pages),
            "--work",
            str(out / "featurise"),
        ]
        + (["--rounds", "1"] if quick else []),
        # curate parses its own copy of parse.py's bench dump (same MB) under local[1]
        "curate": [
            py,
            "benchmarks/curate.py",
            "--mb",
            "10" if quick else "100",
            "--work",
            str(out / "curate"),
        ],
        "train": [py, "benchmarks/train.py", "--data", str(shards)]
        + (["--steps", "10"] if quick else []),
    }
    result: dict[str, Any] = {"machine": machine(), "benchmarks": {}}
    # Each script's results land in a fresh folder of this run (bench.json keeps them): a
    # stale file can never be read as a new result, and nothing is deleted to ensure it.
    with tempfile.TemporaryDirectory(prefix="bench-results-") as tmp:
        for name in BENCHMARKS:
            if which in (name, "all"):
                json_path = Path(tmp) / f"{name}.json"
                result["benchmarks"][name] = run_benchmark(name, cmds[name], json_path)
    if which in ("train", "all"):
        import torch

        if torch.cuda.is_available():
            result["cpu_gpu"] = cpu_gpu_crossover(str(shards))
    result["targets"] = targets(result)
    (out / "bench.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    (out / "bench.md").write_text(render(result))
    return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target the benchmarks judged, in run order, each with its benchmark's name."""
    return [
        {"benchmark": name, **t}
        for name, b in result["benchmarks"].items()
        for t in (b.get("results") or {}).get("targets", [])
    ]


def failed(result: dict[str, Any]) -> list[str]:
    """The benchmarks that failed or wrote no results."""
    return [name for name, b in result["benchmarks"].items() if b["error"]]


def render(result: dict[str, Any]) -> str:
    """``bench.md``: the machine, the targets with their verdicts, then each benchmark's
    printed output."""
    m = result["machine"]
    lines = [
        "# pipeline bench",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB",
        f"- GPU: {m['gpu'] or 'none'}",
        f"- {m['os']}, Python {m['python']}, torch {m['torch']}, pyspark {m.get('pyspark')}",
        "",
    ]
    checks = result.get("targets") or targets(result)
    if checks:
        lines += ["## Targets", ""]
        for t in checks:
            target = Target(t["target"], t["value"], t["op"], t["goal"])
            lines.append(f"- {t['benchmark']}: {target.line()}")
        lines.append("")
    for name, b in result["benchmarks"].items():
        lines += [
            f"## {name}",
            "",
            f"`{' '.join(b['command'])}` — exit {b['returncode']}, {b['seconds']} s",
            "",
        ]
        if b["error"]:
            lines += [f"**failed**: {b['error']}", ""]
        lines += [b["output"].strip(), ""]
    if "cpu_gpu" in result:
        header = "| layers | heads | width | params | CPU tokens/s | GPU tokens/s | copy share |"
        lines += ["## CPU vs GPU", "", header, "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["cpu_gpu"]["rows"]:
            lines.append(
                f"| {r['n_layer']} | {r['n_head']} | {r['n_embd']} | {r['params']:,} "
                f"| {r['cpu_tokens_per_s']:,} | {r['gpu_tokens_per_s']:,} | "
                f"{r['copy_share']:.1%} |"
            )
        w = result["cpu_gpu"]["gpu_wins_from"]
        lines += ["", f"GPU faster from: {w['n_embd'] if w else 'never'} wide"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write ``bench.json`` and ``bench.md``; 1 if any failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", default="all", choices=["all", *BENCHMARKS])
    p.add_argument("--out", type=Path, default=Path("work/bench"), help="output folder")
    p.add_argument("--quick", action="store_true", help="small inputs: a smoke run")
    args = p.parse_args(argv)
    result = run_bench(args.name, args.out, quick=args.quick)
    print(f"bench: wrote {args.out / 'bench.json'} and bench.md")
    if bad := failed(result):
        print(f"bench: failed: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
