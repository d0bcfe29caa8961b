#!/usr/bin/env bash
# One-shot device check (issue 17): at most ~8 minutes on one GPU, one table.
#
#   1. shards of the English sample dump at block size 1024 (parse + featurise, Spark
#      local[*]; the 124M preset's featurise settings but a 8192-token vocabulary);
#   2. the 124M preset (conf/gpu-124m.yaml) for STEPS steps (default 200) in bf16 on
#      train.backend=torch -np 1 through torchrun (NCCL for CUDA tensors), without and
#      with torch.compile: tokens/s, MFU, loss first -> last;
#   3. the same on train.backend=horovod -np 1 (Horovod's NCCL build), without compile;
#   4. the CPU/GPU crossover ladder of benchmarks/run_all.py (cpu_gpu_crossover).
#
# Prints a markdown table and writes it to benchmarks/results/gpu-DATE-DEVICE.md
# (OUT_DIR to change). Never part of the test suite; needs CUDA.
#
# Usage: benchmarks/gpu.sh        Env: STEPS (200), GLOBAL_BATCH (32), MICRO_BATCH (16),
#        DUMP (the shared English sample), OUT_DIR (benchmarks/results), PY (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
PIPELINE=${PIPELINE:-$(dirname "$PY")/pipeline}
STEPS=${STEPS:-200}
GLOBAL_BATCH=${GLOBAL_BATCH:-32}
MICRO_BATCH=${MICRO_BATCH:-16}
DUMP=${DUMP:-../shared/data/wiki/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2}
OUT_DIR=${OUT_DIR:-benchmarks/results}

"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "benchmarks/gpu.sh needs CUDA")'
WORK=$(mktemp -d -t gpu-bench-XXXXXX)
echo "gpu.sh: work folder $WORK" >&2

COMMON=(spark.master="local[*]" spark.ui_enabled=false spark.log_level=ERROR)
timeout 240 "$PIPELINE" parse conf/gpu-124m.yaml --input "$DUMP" --out "$WORK/pages" \
  parse.namespaces=[0] "${COMMON[@]}" >&2
timeout 240 "$PIPELINE" featurise conf/gpu-124m.yaml --pages "$WORK/pages" --out "$WORK/shards" \
  featurise.vocab_size=8192 "${COMMON[@]}" >&2

train() {  # NAME BACKEND LAUNCHER COMPILE
  timeout 300 "$PIPELINE" train conf/gpu-124m.yaml --data "$WORK/shards" --run "$WORK/runs/$1" \
    --backend "$2" --launcher "$3" -np 1 train.compile="$4" train.max_steps="$STEPS" \
    train.global_batch="$GLOBAL_BATCH" train.micro_batch="$MICRO_BATCH" train.warmup_steps=20 \
    train.eval_every=0 train.eval_batches=4 train.checkpoint_every=0 >&2 \
    || echo "gpu.sh: run $1 failed (exit $?)" >&2
}
train torch-eager torch torchrun false
train torch-compile torch torchrun true
train horovod-eager horovod horovodrun false

"$PY" - "$WORK" "$OUT_DIR" <<'PY'
import datetime, json, statistics, sys
from pathlib import Path

import torch

sys.path.insert(0, ".")
from benchmarks.run_all import cpu_gpu_crossover

work, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
device = torch.cuda.get_device_name(0)
lines = [
    f"# GPU check {datetime.date.today()} on {device}",
    "",
    "| run | steps | tokens/s (median) | MFU (median) | loss first -> last | val loss / bits per byte |",
    "|---|---:|---:|---:|---|---|",
]
for name in ("torch-eager", "torch-compile", "horovod-eager"):
    path = work / "runs" / name / "metrics.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []
    steps = [r for r in rows if r.get("loss") is not None][5:]
    if not steps:
        lines.append(f"| {name} | failed | - | - | - | - |")
        continue
    evals = [r for r in rows if r.get("val_loss") is not None]
    val = f"{evals[-1]['val_loss']:.3f} / {evals[-1].get('val_bpb') or 0:.3f}" if evals else "-"
    lines.append(
        f"| {name} | {steps[-1]['step']} | {statistics.median(r['tokens_per_s'] for r in steps):,.0f}"
        f" | {statistics.median(r['mfu'] for r in steps):.1%}"
        f" | {rows[1]['loss']:.3f} -> {steps[-1]['loss']:.3f} | {val} |"
    )
cross = cpu_gpu_crossover(str(work / "shards"))
lines += ["", "| layers x width | params | CPU tokens/s | GPU tokens/s | copy share |",
          "|---|---:|---:|---:|---:|"]
for r in cross["rows"]:
    lines.append(
        f"| {r['n_layer']} x {r['n_embd']} | {r['params'] / 1e6:.2f}M | {r['cpu_tokens_per_s']:,}"
        f" | {r['gpu_tokens_per_s']:,} | {r['copy_share']:.1%} |"
    )
wins = cross["gpu_wins_from"]
lines.append("")
lines.append(
    f"GPU wins from {wins['n_layer']} x {wins['n_embd']}" if wins else "GPU never wins"
)
text = "\n".join(lines) + "\n"
print(text)
out_dir.mkdir(parents=True, exist_ok=True)
slug = "".join(c if c.isalnum() else "-" for c in device).strip("-")
(out_dir / f"gpu-{datetime.date.today()}-{slug}.md").write_text(text)
PY
