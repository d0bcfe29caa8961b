"""Bad input stops training with a clear error before any step; a NaN loss stops it
naming the step and keeping the last good checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.train.checkpoint import complete_checkpoints
from tests.support import training as ts


def no_step_was_made(run: Path) -> bool:
    metrics = run / "metrics.jsonl"
    trained = metrics.is_file() and ts.losses(run)
    return not trained and not complete_checkpoints(run)


def test_no_manifest(tmp_path: Path) -> None:
    empty = tmp_path / "shards"
    empty.mkdir()
    cfg = ts.write_config(tmp_path / "c.yaml", data=empty, run=tmp_path / "run")
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    assert "pipeline train: error:" in proc.stderr and "no _SUCCESS" in proc.stderr
    assert "pipeline featurise" in proc.stderr
    assert no_step_was_made(tmp_path / "run")


def test_vocabulary_larger_than_the_model(tmp_path: Path) -> None:
    cfg = ts.write_config(
        tmp_path / "c.yaml", data=ts.real_shards(), run=tmp_path / "run", model={"vocab_size": 300}
    )
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    assert f"vocabulary {ts.VOCAB} larger than the model's 300" in proc.stderr
    assert no_step_was_made(tmp_path / "run")


def test_block_size_above_the_shards(tmp_path: Path) -> None:
    cfg = ts.write_config(
        tmp_path / "c.yaml", data=ts.real_shards(), run=tmp_path / "run", model={"block_size": 64}
    )
    text = (tmp_path / "c.yaml").read_text().replace("block_size: 32", "block_size: 64")
    (tmp_path / "c.yaml").write_text(text)  # featurise.block_size too, or the config refuses
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    assert "model.block_size 64 exceeds the shards' 32" in proc.stderr
    assert no_step_was_made(tmp_path / "run")


@pytest.mark.parametrize("backend", ["horovod", "torch"])
def test_checksum_mismatch_is_reported_by_the_ranks(backend: str, tmp_path: Path) -> None:
    data = ts.copy_shards(tmp_path / "shards")
    manifest = json.loads((data / "manifest.json").read_text())
    shard = data / manifest["splits"]["train"]["shards"][0]["path"]
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(raw))
    cfg = ts.write_config(tmp_path / "c.yaml", data=data, run=tmp_path / "run", backend=backend)
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("pipeline train: error:") and "sha256" in last
    assert "differs from the manifest's" in last and str(shard) in last
    assert "(rank 0)" in last or "(rank 1)" in last  # both fail alike; the first one is named
    assert no_step_was_made(tmp_path / "run")


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    cfg = ts.write_config(
        tmp_path / "c.yaml",
        data=ts.real_shards(),
        run=run,
        lr=1e30,
        min_lr=0.0,
        warmup_steps=0,
        checkpoint_every=1,
    )
    proc = ts.pipeline_train(cfg)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "loss became nan at step 2" in last
    good = run / "checkpoints" / "step-0000001"
    assert f"the last good checkpoint is {good}" in last.lower()
    assert [s for s, _ in complete_checkpoints(run)] == [1]
    assert not (run / "model").exists()
