"""``RUN/metrics.jsonl``, the progress bar and the end-of-run summary (rank 0 only).

One JSON object per line. A training step writes ``step`` (optimizer steps done),
``epoch`` (fractional: epochs of the train split consumed), ``loss`` (mean over the global
batch, averaged over ranks), ``lr``, ``tokens_per_s`` (global batch x block size / step
time), ``data_wait`` (fraction of the step spent in the dataset's ``next_batch``) and
``step_s``; an evaluation adds ``val_loss`` and ``val_ppl`` to its step's line. The line of
``step`` 0 holds the evaluation before any update.
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

METRICS_FILE = "metrics.jsonl"


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
    """Append-only writer of ``RUN/metrics.jsonl``, consistent with the resumed step.

    Opening it keeps only the lines of steps ``<= keep_through`` (the checkpoint resumed
    from; ``-1`` on a fresh run drops everything), so a re-run after a crash never shows
    the steps it redoes twice. Each line is flushed as written.
    """

    def __init__(self, run_dir: str | os.PathLike[str], keep_through: int) -> None:
        path = Path(run_dir) / METRICS_FILE
        kept = [r for r in read_metrics(run_dir) if r.get("step", 0) <= keep_through]
        atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept))
        self._f: TextIO = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, row: dict[str, Any]) -> None:
        """Append one line (non-finite floats are written as null)."""
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in row.items()
        }
        self._f.write(json.dumps(clean) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


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
        "tokens_per_s", "data_wait", "model_dir"}`` (None where unknown); ``tokens_per_s``
        and ``data_wait`` are medians over the logged steps.
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
        "tokens_per_s": median("tokens_per_s"),
        "data_wait": median("data_wait"),
        "model_dir": str(model_dir) if (model_dir / "config.json").is_file() else None,
    }
