"""``python -m pipeline.spark.cds`` writes a class-data sharing archive that a JVM maps
(checked with ``-Xshare:on`` before it is kept), and the stages' sessions start with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SESSION_ARGS = """
from pipeline.spark.session import build_spark_session
from pipeline.stage_config import SparkConfig
spark = build_spark_session(SparkConfig(master="local[1]", ui_enabled=False))
bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
print("ARGS", " ".join(bean.getInputArguments()))
print("ROWS", spark.range(5).count())
spark.stop()
"""


def _python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=900, env=env, check=False
    )


def test_build_then_sessions_start_with_it(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    built = _python(env, "-m", "pipeline.spark.cds")
    assert built.returncode == 0, built.stderr[-2000:]
    folder = tmp_path / "spark-gpu-pipeline" / "jvm"
    (jsa,) = folder.glob("spark-*.jsa")
    info = json.loads(jsa.with_suffix(".json").read_text())
    assert info["size"] == jsa.stat().st_size > 10 << 20  # thousands of Spark classes
    assert sorted(p.name for p in folder.iterdir()) == [jsa.name, jsa.stem + ".json"]
    assert str(jsa) in built.stdout

    again = _python(env, "-m", "pipeline.spark.cds")  # already built: names the same file
    assert again.returncode == 0 and str(jsa) in again.stdout

    run = _python(env, "-c", _SESSION_ARGS)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"-XX:SharedArchiveFile={jsa}" in run.stdout and "ROWS 5" in run.stdout
    assert "[cds]" not in run.stderr  # CDS log lines are silenced
