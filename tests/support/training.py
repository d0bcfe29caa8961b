"""Helpers of the train-stage tests: a small real-text shards folder, configs, runs.

Also the horovodrun worker of the stop-and-resume tests: ``python tests/support/training.py
CONFIG.yaml STOP_AFTER`` trains as one rank and stops cleanly after step ``STOP_AFTER``
(writing a checkpoint), as a preempted job would.
"""

from __future__ import annotations

import atexit
import bz2
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Not from tests.support.paths: this file also runs as a script (the horovodrun worker).
PIPELINE = Path(sys.executable).parent / "pipeline"  # the venv's console script
SAMPLE = ROOT / ".." / "shared" / "data" / "wiki" / "enwiki-10k.xml.bz2"
BLOCK = 32
VOCAB = 512

TINY_MODEL = {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": BLOCK, "vocab_size": 0}


def _texts() -> list[str]:
    from pipeline.wiki.clean import clean_wikitext
    from pipeline.wiki.xmlpages import PageReader

    reader = PageReader(SAMPLE.name)
    with bz2.open(SAMPLE) as f:
        pages = reader.feed(f.read()) + reader.close()
    texts = []
    for p in pages:
        if p.ns == 0 and p.text and not p.text.lstrip().lower().startswith("#redirect"):
            text = clean_wikitext(p.text).text
            if len(text) > 200:
                texts.append(f"{p.title}\n\n{text}")
    return texts


def write_shards(
    root: Path,
    train: np.ndarray,
    val: np.ndarray,
    tokenizer_json: str,
    vocab_size: int,
    eot_id: int = 0,
) -> Path:
    """A shards folder in the manifest format: one train and one val shard."""
    from tests.support.manifests import write_dataset

    return write_dataset(
        root,
        {"train": [train.astype(np.uint16)], "val": [val.astype(np.uint16)]},
        vocab_size=vocab_size,
        eot_id=eot_id,
        tokenizer_json=tokenizer_json,
    )


def _tmpdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def real_shards() -> Path:
    """Shards of the real English sample (enwiki-10k): byte-level BPE of 512 tokens,
    block size 32; the last documents (about 10%) are the validation split. Built once per
    test process."""
    from pipeline.shards.tokenize import train_tokenizer

    texts = _texts()
    tok = train_tokenizer(texts, VOCAB)
    eot = tok.token_to_id("<|endoftext|>")
    n_val = max(2, len(texts) // 10)

    def rows(docs: list[str]) -> np.ndarray:
        ids: list[int] = []
        for enc in tok.encode_batch(docs):
            ids += enc.ids + [eot]
        n = len(ids) // (BLOCK + 1)
        return np.asarray(ids[: n * (BLOCK + 1)], dtype=np.int64).reshape(n, BLOCK + 1)

    return write_shards(
        _tmpdir("shards-") / "shards",
        rows(texts[:-n_val]),
        rows(texts[-n_val:]),
        tok.to_str(),
        tok.get_vocab_size(),
        eot,
    )


def copy_shards(dest: Path) -> Path:
    """A private copy of :func:`real_shards` that a test may damage."""
    shutil.copytree(real_shards(), dest)
    return dest


def write_config(
    path: Path, *, data: Path, run: Path, np: int = 2, model: dict | None = None, **train: Any
) -> Path:
    """A YAML config of a tiny GPT on ``data`` (train keys as keyword arguments)."""
    settings = {
        "data": str(data),
        "run": str(run),
        "np": np,
        "max_steps": 8,
        "global_batch": 8,
        "micro_batch": 4,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "warmup_steps": 2,
        "eval_every": 4,
        "eval_batches": 2,
        "checkpoint_every": 100,
        "seed": 7,
        **train,
    }
    cfg = {
        "model": {**TINY_MODEL, **(model or {})},
        "train": settings,
        "featurise": {"block_size": BLOCK},
    }
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def pipeline_train(config: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``pipeline train CONFIG ARGS...`` as a user runs it."""
    return subprocess.run(
        [str(PIPELINE), "train", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def horovodrun_stop_after(config: Path, stop_after: int, np: int = 2) -> None:
    """Start ``np`` ranks of this module's worker: train, stop after ``stop_after``."""
    from pipeline.train import dist

    cmd = dist.horovodrun_command(np, [str(Path(__file__).resolve()), str(config), str(stop_after)])
    proc = subprocess.run(
        cmd, env=dist.launch_env(None), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def metrics(run: Path) -> list[dict]:
    """The rows of ``RUN/metrics.jsonl``."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> dict[int, float]:
    """``{step: training loss}`` of a run."""
    return {r["step"]: r["loss"] for r in metrics(run) if r.get("loss") is not None}


def weights(folder: Path) -> dict[str, Any]:
    """The tensors of ``FOLDER/model.safetensors`` (a checkpoint or an exported model)."""
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


if __name__ == "__main__":
    from pipeline.train.loop import train_rank

    train_rank(sys.argv[1], stop_after=int(sys.argv[2]))
    os._exit(0)
