"""Every expected failure is one or two clear lines, the right exit code, no traceback.

Runs the installed ``pipeline`` console script on real files, as a user does: a full disk
during parse (a small tmpfs), an output on a read-only disk (a read-only tmpfs: we run as
root, whom ``chmod`` does not stop), a ``model.safetensors`` replaced by other bytes
(``generate`` and resume), ``!!python/...`` tags in a config file, a run folder's
``config.yaml`` and an override, a missing dump, a missing pages folder, a truncated
shard, a checkpoint of another model shape and an unknown config key. ``--debug`` shows
the traceback.

The only stderr line allowed besides ours and the progress bars is the JVM's own
``WARNING: Using incubator modules`` line, which Spark's launcher causes and no setting
turns off.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import training as ts
from tests.support.paths import PIPELINE, ROOT

TINY_DUMP = "enwiki-20250201-tiny_dump.xml.bz2"
# Lines on stderr that are not ours but allowed: progress bars and the JVM's start-up
# warning about its incubator module (printed by the JVM itself, before any logging).
_ALLOWED = re.compile(r"^(\w+: +\d+%\|.*|WARNING: Using incubator modules: .*)$")


def pipeline(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``pipeline ARGS...`` as a user runs it, without debug output."""
    environ = {k: v for k, v in os.environ.items() if k != "PIPELINE_DEBUG"}
    return subprocess.run(
        [str(PIPELINE), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
        env={**environ, **(env or {})},
    )


def fails_clearly(proc: subprocess.CompletedProcess, code: int, *expected: str) -> str:
    """Check exit code ``code``, no traceback, one or two lines of ours, nothing else but
    allowed noise; return our first line, which must contain each of ``expected``."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\n{err}"
    assert "Traceback" not in err, err
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    ours = [ln for ln in lines if ln.startswith("pipeline ")]
    assert 1 <= len(ours) <= 2, err
    others = [ln for ln in lines if ln not in ours and not _ALLOWED.match(ln)]
    assert not others, err
    for text in expected:
        assert text in ours[0], err
    return ours[0]


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({proc.stderr.strip()}); tests/unit/test_cli.py "
            "covers the message with an OSError stub"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real tiny shards (the enwiki-10k sample), a config and a run trained 2 steps with a
    checkpoint after each step and the exported model."""
    root = tmp_path_factory.mktemp("trained")
    shards = ts.copy_shards(root / "shards")
    run = root / "run"
    config = ts.write_config(
        root / "tiny.yaml",
        data=shards,
        run=run,
        np=1,
        max_steps=2,
        eval_every=0,
        checkpoint_every=1,
    )
    proc = pipeline("train", str(config))
    assert proc.returncode == 0, proc.stderr
    assert (run / "model" / "model.safetensors").is_file()
    return {"shards": shards, "run": run, "config": config}


def copy_run(trained: dict[str, Path], dest: Path) -> Path:
    return Path(shutil.copytree(trained["run"], dest))


# -- Spark stages -------------------------------------------------------------------------


def test_disk_full_during_parse(wiki_data: Path, tmp_path: Path) -> None:
    # The tiny dump's pages table is about 140 KiB: 64 KiB of disk cannot hold it.
    with tmpfs(tmp_path / "small", "size=64k") as disk:
        out = disk / "pages"
        proc = pipeline(
            "parse",
            "--input",
            str(wiki_data / TINY_DUMP),
            "--out",
            str(out),
            "spark.master=local[1]",
            "spark.ui_enabled=false",
        )
        first = fails_clearly(proc, 1, "no space left on device", str(out), "--out (parse.out)")
        assert first.startswith("pipeline parse: error: ")
        assert "pipeline parse: nothing was published." in proc.stderr
        assert not out.exists() and not list(disk.iterdir())  # no half-written output


def test_missing_input_dump(tmp_path: Path) -> None:
    missing = tmp_path / "enwiki-nothing.xml.bz2"
    proc = pipeline("parse", "--input", str(missing), "--out", str(tmp_path / "pages"))
    fails_clearly(proc, 1, str(missing), "not found")


def test_missing_pages_folder(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    proc = pipeline("featurise", "--pages", str(pages), "--out", str(tmp_path / "shards"))
    fails_clearly(proc, 1, str(pages), "does not exist", "pipeline parse")


# -- config -------------------------------------------------------------------------------


def test_python_tag_in_a_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "x.yaml"
    conf.write_text("parse:\n  split_bytes: 1000\n  out: !!python/object/apply:os.system [id]\n")
    proc = pipeline("parse", str(conf))
    fails_clearly(
        proc, 2, f"{conf} at line 3, column 8: tag !!python/object/apply:os.system is not allowed"
    )


def test_python_tag_in_an_override() -> None:
    proc = pipeline("parse", "spark.conf=!!python/name:os.system")
    fails_clearly(proc, 2, "override spark.conf=", "tag !!python/name:os.system is not allowed")


def test_unknown_config_key() -> None:
    proc = pipeline("train", "train.stpes=10")
    fails_clearly(proc, 2, "unknown config key 'train.stpes'", "valid keys at train")


def test_python_tag_in_a_run_folders_config(trained: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    config = run / "config.yaml"
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^work_dir: .*$", "work_dir: !!python/name:os.system", text))
    expected = f"{config} at line 1, column 11: tag !!python/name:os.system is not allowed"
    fails_clearly(pipeline("train", str(config)), 2, expected)
    job = subprocess.run(  # the horovodrun rank's entry point reads the same file
        [sys.executable, str(ROOT / "jobs" / "train.py"), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    fails_clearly(job, 2, expected)


# -- training, checkpoints, exported model ------------------------------------------------


def test_generate_with_a_damaged_model(trained: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(b"these are other bytes, not a safetensors file\n" * 50)
    proc = pipeline("generate", "--model", str(run / "model"), "--prompt", "The")
    fails_clearly(proc, 1, f"{weights} is damaged", "header too large", "export it again")
    # --debug (or PIPELINE_DEBUG=1) lets the traceback through
    for debug in (
        pipeline("--debug", "generate", "--model", str(run / "model")),
        pipeline("generate", "--model", str(run / "model"), env={"PIPELINE_DEBUG": "1"}),
    ):
        assert debug.returncode == 1
        assert "Traceback (most recent call last)" in debug.stderr
        assert "ExportError" in debug.stderr


def test_resume_from_a_damaged_checkpoint(trained: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    last = run / "checkpoints" / "step-0000002"
    (last / "model.safetensors").write_bytes(os.urandom(4096))
    proc = pipeline("train", str(trained["config"]), "--run", str(run), "train.max_steps=3")
    fails_clearly(
        proc,
        1,
        f"{last}/model.safetensors is damaged",
        f"delete {last} to resume from the previous",
    )


def test_resume_with_another_model_shape(trained: dict[str, Path], tmp_path: Path) -> None:
    run = copy_run(trained, tmp_path / "run")
    proc = pipeline(
        "train", str(trained["config"]), "--run", str(run), "model.n_embd=64", "train.max_steps=3"
    )
    fails_clearly(proc, 1, "cannot resume from", "n_embd 32 -> 64", "use a new --run folder")


def test_truncated_shard(trained: dict[str, Path], tmp_path: Path) -> None:
    shards = Path(shutil.copytree(trained["shards"], tmp_path / "shards"))
    shard = shards / "train" / "part-00000-of-00001.arrow"
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 3)
    proc = pipeline(
        "train", str(trained["config"]), "--data", str(shards), "--run", str(tmp_path / "run")
    )
    fails_clearly(proc, 1, str(shard), "the shard is truncated", "re-run featurise")


def test_output_on_a_read_only_disk(
    trained: dict[str, Path], wiki_data: Path, tmp_path: Path
) -> None:
    # As root, chmod does not stop a write; a read-only mount does.
    with tmpfs(tmp_path / "ro", "ro,size=1m") as disk:
        run = disk / "run"
        proc = pipeline("train", str(trained["config"]), "--run", str(run))
        fails_clearly(proc, 1, str(run), "read-only file system", "--run (train.run)")
        pages = disk / "pages"
        proc = pipeline(
            "parse",
            "--input",
            str(wiki_data / TINY_DUMP),
            "--out",
            str(pages),
            "spark.master=local[1]",
            "spark.ui_enabled=false",
        )
        fails_clearly(proc, 1, str(pages), "read-only file system", "--out (parse.out)")
