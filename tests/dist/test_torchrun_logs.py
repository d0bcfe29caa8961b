"""torchrun keeps its log folders in the run folder (``RUN/torchrun``), never in the
temporary folder, and the empty ones are removed after the launch, failed or not."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.support import training as ts


def train(config: Path, tmp: Path) -> subprocess.CompletedProcess:
    """``pipeline train CONFIG`` with ``TMPDIR=tmp`` (where torchrun made its folders)."""
    tmp.mkdir(exist_ok=True)
    return subprocess.run(
        [str(ts.PIPELINE), "train", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ, TMPDIR=str(tmp)),
    )


def test_torchrun_logs_stay_in_the_run_folder(tmp_path: Path) -> None:
    run, tmp = tmp_path / "run", tmp_path / "tmp"
    cfg = ts.write_config(
        tmp_path / "c.yaml", data=ts.real_shards(), run=run, backend="torch", max_steps=2
    )
    proc = train(cfg, tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(tmp.glob("torchelastic_*")) == []
    assert not (run / "torchrun").exists()  # only empty folders: removed
    assert (run / "model").is_dir()

    # A failing rank: still nothing in TMPDIR, no empty folders left in the run.
    data = ts.copy_shards(tmp_path / "shards")
    manifest = json.loads((data / "manifest.json").read_text())
    shard = data / manifest["splits"]["train"]["shards"][0]["path"]
    raw = bytearray(shard.read_bytes())
    raw[-100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    bad = ts.write_config(
        tmp_path / "bad.yaml", data=data, run=tmp_path / "bad-run", backend="torch"
    )
    proc = train(bad, tmp)
    assert proc.returncode == 1 and "sha256" in proc.stderr
    assert list(tmp.glob("torchelastic_*")) == []
    assert not (tmp_path / "bad-run" / "torchrun").exists()  # the ranks write no error file


def test_torchrun_entry_point_without_a_log_dir_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    # How TorchDistributor's tasks start ranks: `python -m pipeline.train.torchrun` with no
    # --log-dir. It gives torchrun a temporary folder of its own and removes it after.
    from pipeline.train.dist import free_port, launch_env, torchrun_command

    script, seen = tmp_path / "rank.py", tmp_path / "seen"
    seen.mkdir()
    # Each rank leaves a file (their prints to the shared stdout pipe can interleave).
    script.write_text(
        "import os, pathlib\n"
        f"pathlib.Path({str(seen)!r}, os.environ['RANK'] + '-of-' + os.environ['WORLD_SIZE'])"
        ".touch()\n"
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(launch_env(None), TMPDIR=str(tmp))
    env.pop("PET_LOG_DIR", None)
    cmd = torchrun_command(2, [str(script)], rdzv_port=free_port())
    assert cmd[1:3] == ["-m", "pipeline.train.torchrun"], cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in seen.iterdir()) == ["0-of-2", "1-of-2"]
    assert list(tmp.iterdir()) == []  # no torchelastic_*, no pipeline-torchrun-*
