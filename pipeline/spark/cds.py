"""Class-data sharing (CDS) for the local Spark driver JVM: a faster start for every stage.

Starting PySpark's JVM and running its first SQL job loads some 20,000 classes from the
jars; on the 2-core machine that is about 8 s of every ``pipeline parse``/``curate``/
``featurise`` process, before any page is read. A CDS archive holds those classes already
parsed and verified, and the JVM maps it instead: measured 8.4 s → 4.5 s (gateway 2.0 →
1.2 s, context 1.5 → 1.0 s, first job 5.1 → 2.4 s; ``/tmp`` script, 2 runs each).

The archive is the JDK's dynamic archive (JEP 350, Java 13+: ``-XX:ArchiveClassesAtExit``
to write, ``-XX:SharedArchiveFile`` to use). :func:`build` (``python -m
pipeline.spark.cds``, run by ``make setup``) writes it once under
``${XDG_CACHE_HOME:-~/.cache}/spark-gpu-pipeline/jvm/``, named by a key of the Java
executable, the PySpark version and its jars, so that a new JDK or Spark gets a new one.

Safety: a damaged archive makes the JVM die with SIGBUS, so

- it is written under a temporary name, checked by starting a second JVM with
  ``-Xshare:on`` (which refuses to start on an archive it cannot map) and only then renamed
  into place, with a sidecar ``.json`` (written by us: the proof of ownership before
  anything of ours is replaced or removed) recording its size;
- :func:`java_options` uses it only when its size is that size, and with
  ``-Xshare:auto``, under which any mismatch (other heap mode, other class path) only
  turns sharing off; CDS log lines are silenced either way.

It is used only when this process starts the JVM (not under spark-submit), with no extra
class path (``spark.jars``, ``spark.driver.extraClassPath``…: an archive is tied to its
class path), and when ``spark.class_data_sharing`` is true (the default).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.fs import atomic_write

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

__all__ = ["archive_dir", "archive_key", "build", "java_options"]

WRITER = "pipeline.spark.cds"
"""The sidecar's ``written_by``: with the key and the archive's size, the proof that an
archive is ours before it is removed."""
QUIET = "-Xlog:cds=off,cds+dynamic=off"
"""JVM flag: no CDS log lines (e.g. "Skipping … Signed JAR" while writing, a mismatch)."""
# Settings that change the driver's class path: an archive is only valid for its own.
_CLASS_PATH_KEYS = (
    "spark.jars",
    "spark.jars.packages",
    "spark.driver.extraClassPath",
    "spark.driver.userClassPathFirst",
)


def archive_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/spark-gpu-pipeline/jvm``: where archives live."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spark-gpu-pipeline" / "jvm"


def _java() -> Path | None:
    """The ``java`` executable PySpark's launcher runs (``JAVA_HOME``, else ``PATH``)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return Path(found).resolve() if found and Path(found).is_file() else None


def _spark_jars() -> Path:
    import pyspark

    home = os.environ.get("SPARK_HOME") or os.path.dirname(pyspark.__file__)
    return Path(home) / "jars"


def archive_key() -> str | None:
    """16 hex digits naming the archive of this JDK and Spark: a SHA-256 of the Java
    executable's path, size and mtime, the PySpark version, the jars' folder and every
    jar's name and size. The folder counts: the JVM refuses an archive whose recorded class
    path differs ("shared class paths mismatch"), so each virtual environment needs its
    own. None when Java or Spark's jars cannot be found."""
    import pyspark

    java, jars = _java(), _spark_jars()
    if java is None or not jars.is_dir():
        return None
    st = java.stat()
    h = hashlib.sha256(f"{java}\0{st.st_size}\0{st.st_mtime_ns}\0{pyspark.__version__}".encode())
    h.update(f"\0{jars.resolve()}".encode())
    for jar in sorted(jars.glob("*.jar")):
        h.update(f"\0{jar.name}\0{jar.stat().st_size}".encode())
    return h.hexdigest()[:16]


def _paths(key: str) -> tuple[Path, Path]:
    folder = archive_dir()
    return folder / f"spark-{key}.jsa", folder / f"spark-{key}.json"


def current_archive() -> Path | None:
    """The archive for this JDK and Spark if it exists whole (its size is the one its
    sidecar records), else None."""
    try:
        key = archive_key()
        if key is None:
            return None
        jsa, meta = _paths(key)
        size = json.loads(meta.read_text(encoding="utf-8"))["size"]
        return jsa if jsa.stat().st_size == size else None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):  # no home, unreadable
        return None


def java_options(settings: dict[str, str], enabled: bool = True) -> str:
    """The JVM flags that make the driver use the archive, or "" when it must not:
    disabled, no whole archive for this JDK and Spark, a class path of the user's in
    ``settings`` (Spark properties), or a path the option parser would split.

    Returns:
        e.g. ``-XX:SharedArchiveFile=/root/.cache/…/spark-0123….jsa -Xshare:auto
        -Xlog:cds=off,cds+dynamic=off``, to append to ``spark.driver.extraJavaOptions``.
    """
    if not enabled or any(settings.get(k) for k in _CLASS_PATH_KEYS):
        return ""
    jsa = current_archive()
    if jsa is None or any(c.isspace() or c in "'\"\\" for c in str(jsa)):
        return ""
    return f"-XX:SharedArchiveFile={jsa} -Xshare:auto {QUIET}"


def _workload(spark: SparkSession, folder: str) -> None:
    """Run what the stages run, so that their classes are loaded and archived: Python
    rows to a DataFrame, Parquet write and read, a shuffle, a sort, ``mapInArrow`` with a
    Python function, ``toLocalIterator``."""
    import datetime as dt

    rows = [(i, f"page {i}", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), i % 3 == 0) for i in range(64)]
    df = spark.createDataFrame(rows, "page_id long, title string, ts timestamp, ok boolean")
    df.repartition(2).write.mode("overwrite").parquet(f"{folder}/pages")
    back = spark.read.parquet(f"{folder}/pages")
    back.groupBy("ok").count().orderBy("ok").collect()

    def double(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
        yield from batches

    back.mapInArrow(double, back.schema).where("page_id > 3").sortWithinPartitions("title").count()
    sum(1 for _ in back.orderBy("page_id").select("title").toLocalIterator())


def _session(java_opts: str) -> SparkSession:
    from pipeline.spark.session import build_spark_session
    from pipeline.stage_config import SparkConfig

    conf = {"spark.driver.extraJavaOptions": java_opts}
    cfg = SparkConfig(
        master="local[2]", ui_enabled=False, log_level="ERROR", conf=conf, class_data_sharing=False
    )
    return build_spark_session(cfg)


def _run_and_exit(java_opts: str) -> int:
    """In a child: start a session with ``java_opts``, run the workload, stop, and wait
    for the JVM to exit (it writes an ``ArchiveClassesAtExit`` archive as it exits)."""
    spark = _session(java_opts)
    gateway = spark.sparkContext._gateway
    with tempfile.TemporaryDirectory(prefix="pipeline-cds-") as folder:
        _workload(spark, folder)
    spark.stop()
    proc = getattr(gateway, "proc", None)
    if proc is None:
        return 1
    proc.stdin.close()  # PySpark's JVM exits when its stdin closes
    return proc.wait(timeout=300)


def build(*, force: bool = False, timeout_s: float = 600) -> Path:
    """Write the archive for this JDK and Spark (unless a whole one exists and not
    ``force``) and return its path. Takes about 30 s on 2 cores (two JVM starts).

    Raises:
        RuntimeError: no Java or Spark jars, the JVM failed to write the archive, or the
            written archive does not start a JVM (then nothing is kept).
    """
    key = archive_key()
    if key is None:
        raise RuntimeError("no java executable or Spark jars found; install Java 17+")
    jsa, meta = _paths(key)
    if not force and current_archive() == jsa:
        return jsa
    jsa.parent.mkdir(parents=True, exist_ok=True)
    # Created here (O_EXCL), so the temporary file removed below is provably ours.
    fd, name = tempfile.mkstemp(prefix=f".{jsa.name}.tmp-", dir=jsa.parent)
    os.close(fd)
    tmp = Path(name)
    me = [sys.executable, "-m", "pipeline.spark.cds"]
    scratch = tempfile.TemporaryDirectory(prefix="pipeline-cds-")
    # A JVM that crashes writes hs_err_pid*.log into its working folder: ours, not the user's.
    errors = f"-XX:ErrorFile={scratch.name}/hs_err_pid%p.log"
    root = str(Path(__file__).resolve().parents[2])  # the children import this package
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
    )
    try:
        for step, opts in (
            ("writing", f"-XX:ArchiveClassesAtExit={tmp} {QUIET} {errors}"),
            ("checking", f"-XX:SharedArchiveFile={tmp} -Xshare:on {QUIET} {errors}"),
        ):
            proc = subprocess.run(
                [*me, "--child", opts],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                cwd=scratch.name,
                env=env,
                check=False,
            )
            if proc.returncode != 0 or not tmp.is_file():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RuntimeError(f"{step} the archive {tmp} failed: {' | '.join(tail)}")
        size = tmp.stat().st_size
        info = {
            "written_by": WRITER,
            "size": size,
            "key": key,
            "java": str(_java()),
            "jars": str(_spark_jars().resolve()),
            "created": time.time(),
        }
        atomic_write(meta, json.dumps(info, indent=1) + "\n")
        os.replace(tmp, jsa)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # made by mkstemp above; only left when something failed
        scratch.cleanup()
    _remove_older(key)
    return jsa


def _remove_older(key: str) -> None:
    """Remove the archives this module wrote (their sidecar is the proof) that no JVM can use
    any more: those of an older key for the same jars folder (a new JDK or Spark), and
    those whose jars folder is gone (a deleted virtual environment). Archives of other
    live environments stay."""
    here = str(_spark_jars().resolve())
    for meta in archive_dir().glob("spark-*.json"):
        other = meta.name[len("spark-") : -len(".json")]
        if other == key:
            continue
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        jars = info.get("jars")
        jsa = meta.with_suffix(".jsa")
        if info.get("written_by") != WRITER or info.get("key") != other:
            continue  # not a sidecar of ours
        with contextlib.suppress(OSError):
            if jsa.stat().st_size != info.get("size"):
                continue  # not the archive the sidecar describes
        if isinstance(jars, str) and jars != here and Path(jars).is_dir():
            continue
        with contextlib.suppress(FileNotFoundError):
            jsa.unlink()
        with contextlib.suppress(FileNotFoundError):
            meta.unlink()


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.spark.cds [--force]``: build the archive; print its path."""
    p = argparse.ArgumentParser(prog="python -m pipeline.spark.cds", description=__doc__)
    p.add_argument("--force", action="store_true", help="rebuild even if one exists")
    p.add_argument("--child", help=argparse.SUPPRESS)
    ns = p.parse_args(argv)
    if ns.child is not None:
        return _run_and_exit(ns.child)
    try:
        path = build(force=ns.force)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        print(
            f"class-data sharing archive not built ({e}); Spark starts without it. To build "
            f"it, make {archive_dir()} writable (or set XDG_CACHE_HOME) and rerun "
            "python -m pipeline.spark.cds",
            file=sys.stderr,
        )
        return 1
    print(f"class-data sharing archive: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
