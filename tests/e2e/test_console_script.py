"""The installed ``pipeline`` console script and the jobs/ entry points, as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import pipeline
from tests.support.paths import PIPELINE, ROOT


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=120, check=False, cwd=ROOT
    )


def test_console_script_version_and_help() -> None:
    assert PIPELINE.exists(), "make setup should install the pipeline console script"
    version = run(str(PIPELINE), "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"pipeline {pipeline.__version__}"
    help_ = run(str(PIPELINE), "parse", "--help")
    assert help_.returncode == 0
    assert "--input" in help_.stdout and "key.sub=value" in help_.stdout


def test_bad_override_fails_naming_the_key() -> None:
    proc = run(str(PIPELINE), "train", "train.nope=1")
    assert proc.returncode == 2
    assert "unknown config key 'train.nope'" in proc.stderr


def test_report_of_a_missing_run_fails_clearly() -> None:
    proc = run(str(PIPELINE), "report", "runs/no-such-run")
    assert proc.returncode == 1
    assert "runs/no-such-run is not a run folder" in proc.stderr


def test_jobs_are_runnable_scripts() -> None:
    for job in ("parse_dump.py", "featurise.py", "train.py"):
        proc = run(sys.executable, str(ROOT / "jobs" / job), "--help")
        assert proc.returncode == 0, proc.stderr
        assert "usage:" in proc.stdout


def test_help_does_not_start_spark_or_horovod() -> None:
    """--help must be instant: no JVM and no Horovod import."""
    code = (
        "import sys; from pipeline.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('pyspark', 'horovod', 'torch') if m in sys.modules]\n"
        "print('LOADED:' + ','.join(bad))"
    )
    proc = run(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "LOADED:", proc.stdout
    assert os.environ.get("PYSPARK_GATEWAY_PORT") is None
