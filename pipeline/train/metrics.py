"""``RUN/metrics.jsonl``, ``RUN/tensorboard/``, the progress bar, MFU and the end-of-run
summary (rank 0 only).

One JSON object per line. A training step writes ``step`` (optimizer steps done),
``epoch`` (fractional: epochs of the train split consumed), ``loss`` (mean over the global
batch, averaged over ranks), ``lr``, ``tokens_per_s`` (global batch x block size / step
time), ``mfu`` (model FLOPs utilisation, see :func:`mfu`), ``grad_norm`` (global gradient
norm before clipping), ``data_wait`` (fraction of the step spent in the dataset's
``next_batch``) and ``step_s``; an evaluation adds ``val_loss`` (nats per token),
``val_ppl`` and ``val_bpb`` (bits per UTF-8 byte, comparable across tokenizers) to its
step's line. The line of ``step`` 0 holds the evaluation before any update. The same
scalars go to TensorBoard event files in ``RUN/tensorboard/`` (tensorboardX), under
``train/…`` and ``val/…``; view them with ``tensorboard --logdir RUN/tensorboard``. With
``train.mlflow: true`` they also go to an MLflow run (:mod:`pipeline.train.tracking_mlflow`).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
from pathlib import Path
from typing import Any, TextIO

from pipeline.fs import atomic_write
from pipeline.train.tracking_mlflow import MlflowSpec, MlflowTracker

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"

PEAK_TFLOPS = {
    "A100": 312.0,
    "H100": 989.0,
    "H200": 989.0,
    "L4": 121.0,
}
"""Dense bf16 tensor-core peak TFLOP/s per GPU, without sparsity, from the vendor data
sheets: A100 (SXM/PCIe) 312; H100 SXM 989 (the PCIe card's 756 is reached through
``train.peak_tflops``); H200 989 (same compute as H100 SXM); L4 121. Matched against
``torch.cuda.get_device_name``."""

CPU_PEAK_TFLOPS = 0.0
"""No table entry for CPUs: MFU is reported as 0 on CPU unless ``train.peak_tflops``
gives the machine's peak."""

TB_TAGS = {
    "loss": "train/loss",
    "lr": "train/lr",
    "tokens_per_s": "train/tokens_per_s",
    "mfu": "train/mfu",
    "grad_norm": "train/grad_norm",
    "data_wait": "train/data_wait",
    "val_loss": "val/loss",
    "val_bpb": "val/bits_per_byte",
}
"""metrics.jsonl key -> TensorBoard tag."""


def peak_flops(device: Any, override_tflops: float = 0.0) -> float:
    """Peak FLOP/s of one device: ``override_tflops`` (``train.peak_tflops``) when > 0,
    else the :data:`PEAK_TFLOPS` entry named by a word of the CUDA device name (``NVIDIA
    A100-SXM4-80GB``, ``NVIDIA H100 80GB HBM3``), else 0 (unknown: MFU is reported as 0)."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if getattr(device, "type", "cpu") != "cuda":
        return CPU_PEAK_TFLOPS * 1e12
    import torch

    words = set(torch.cuda.get_device_name(device).upper().replace("-", " ").split())
    for key, tflops in PEAK_TFLOPS.items():  # whole words: "L4" is not "L40S"
        if key in words:
            return tflops * 1e12
    return 0.0


def mfu(flops_per_token: float, tokens_per_s: float, peak: float) -> float:
    """Model FLOPs utilisation: ``flops_per_token x tokens/s / peak`` (PaLM, Chowdhery et
    al. 2022, appendix B; nanoGPT's ``estimate_mfu``). ``peak`` is the FLOP/s of all
    ranks together; 0 when the peak is unknown."""
    return flops_per_token * tokens_per_s / peak if peak > 0 else 0.0


def val_fields(val: float | None, tokens_per_byte: float | None) -> dict[str, Any]:
    """The evaluation keys of a metrics line: ``val_loss`` (nats/token), ``val_ppl`` and,
    with ``tokens_per_byte``, ``val_bpb`` = ``val_loss / ln 2 x tokens / bytes``."""
    if val is None:
        return {}
    out = {"val_loss": val, "val_ppl": math.exp(min(val, 50.0))}
    if tokens_per_byte:
        out["val_bpb"] = val / math.log(2) * tokens_per_byte
    return out


def log_line(row: dict[str, Any]) -> str:
    """One log line of a metrics row: ``step 50: loss 4.1234, val_loss 4.2 (1.9 bits/byte),
    12,345 tokens/s, MFU 1.2%``."""
    parts = []
    if row.get("loss") is not None:
        parts.append(f"loss {row['loss']:.4f}")
    if row.get("val_loss") is not None:
        bpb = f" ({row['val_bpb']:.3f} bits/byte)" if row.get("val_bpb") else ""
        parts.append(f"val_loss {row['val_loss']:.4f}{bpb}")
    if row.get("tokens_per_s") is not None:
        parts.append(f"{row['tokens_per_s']:,.0f} tokens/s")
    if row.get("mfu") is not None:
        parts.append(f"MFU {row['mfu']:.2%}")
    return f"step {row['step']}: " + ", ".join(parts)


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete line of ``RUN/metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLog:
    """Append-only writer of ``RUN/metrics.jsonl`` (and TensorBoard event files),
    consistent with the resumed step.

    Opening it keeps only the lines of steps ``<= keep_through`` (the checkpoint resumed
    from; ``-1`` on a fresh run drops everything), so a re-run after a crash never shows
    the steps it redoes twice; the TensorBoard writer opens with ``purge_step =
    keep_through + 1``, which tells TensorBoard to drop the redone steps too. Each line is
    flushed as written. ``mlflow`` (a :class:`~pipeline.train.tracking_mlflow.MlflowSpec`)
    also sends every row to a new MLflow run.

    Raises:
        UsageError: ``mlflow`` given but mlflow is not installed.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        keep_through: int,
        *,
        tensorboard: bool = True,
        mlflow: MlflowSpec | None = None,
    ) -> None:
        path = Path(run_dir) / METRICS_FILE
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= keep_through]
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept))
        self._f: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._tb: Any = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(
                str(Path(run_dir) / TENSORBOARD_DIR),
                purge_step=keep_through + 1 if keep_through >= 0 else None,
                flush_secs=10,
            )
        self._mlflow: MlflowTracker | None = None
        if mlflow is not None:
            self._mlflow = MlflowTracker(mlflow, TB_TAGS)

    def write(self, row: dict[str, Any]) -> None:
        """Append one line (non-finite floats are written as null)."""
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()
        }
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()
        if self._tb is not None:
            for key, tag in TB_TAGS.items():
                if clean.get(key) is not None:
                    self._tb.add_scalar(tag, clean[key], clean["step"])
        if self._mlflow is not None:
            self._mlflow.log(clean)

    def close(self, finished: bool = True) -> None:
        """Close the file and writers; ``finished`` false marks the MLflow run ``FAILED``."""
        self._f.close()
        if self._tb is not None:
            self._tb.close()
        if self._mlflow is not None:
            self._mlflow.close(finished)


class _LineFile:
    """A file for tqdm when stderr is not a terminal (under horovodrun, a log file): each
    refresh becomes one line instead of carriage-return redraws."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").replace("\x1b[A", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar over optimizer steps on stderr (a line every 10 s when not a terminal);
    a do-nothing stand-in when ``enabled`` is false (ranks other than 0)."""
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc="train",
        unit="step",
        disable=not enabled,
        file=sys.stderr if tty else _LineFile(sys.stderr),
        mininterval=0.5 if tty else 10.0,
        dynamic_ncols=tty,
        ascii=not tty,
    )


def summarise(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Summary of a run from its ``metrics.jsonl``.

    Returns:
        ``{"steps", "loss", "val_loss_start", "val_loss_end", "val_ppl_end",
        "val_bpb_start", "val_bpb_end", "tokens_per_s", "mfu", "data_wait", "model_dir"}``
        (None where unknown); ``tokens_per_s``, ``mfu`` and ``data_wait`` are medians over
        the logged steps.
    """
    rows = read_metrics(run_dir)
    steps = [r for r in rows if r.get("loss") is not None]
    evals = [r for r in rows if r.get("val_loss") is not None]

    def median(key: str) -> float | None:
        vals = [r[key] for r in steps if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    model_dir = Path(run_dir) / "model"
    return {
        "steps": max((r["step"] for r in rows), default=0),
        "loss": steps[-1]["loss"] if steps else None,
        "val_loss_start": evals[0]["val_loss"] if evals else None,
        "val_loss_end": evals[-1]["val_loss"] if evals else None,
        "val_ppl_end": evals[-1].get("val_ppl") if evals else None,
        "val_bpb_start": evals[0].get("val_bpb") if evals else None,
        "val_bpb_end": evals[-1].get("val_bpb") if evals else None,
        "tokens_per_s": median("tokens_per_s"),
        "mfu": median("mfu"),
        "data_wait": median("data_wait"),
        "model_dir": str(model_dir) if (model_dir / "config.json").is_file() else None,
    }
