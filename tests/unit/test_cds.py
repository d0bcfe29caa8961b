"""The driver's class-data sharing archive is used only when whole and when the class path
is Spark's own; older archives are removed only when their sidecar proves they are ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.spark import cds, session
from pipeline.stage_config import SparkConfig


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path / "spark-gpu-pipeline" / "jvm"


def _fake_archive(folder: Path, key: str, data: bytes, recorded: int | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    jsa = folder / f"spark-{key}.jsa"
    jsa.write_bytes(data)
    size = len(data) if recorded is None else recorded
    meta = {"written_by": cds.WRITER, "size": size, "key": key}
    (folder / f"spark-{key}.json").write_text(json.dumps(meta))
    return jsa


def test_key_names_this_jdk_and_spark() -> None:
    key = cds.archive_key()
    assert key is not None and len(key) == 16 and key == cds.archive_key()


def test_no_archive_no_flags(cache: Path) -> None:
    assert cds.java_options({}) == ""
    assert "SharedArchiveFile" not in session_flags()


def test_whole_archive_is_used_with_auto_sharing_and_quiet_logs(cache: Path) -> None:
    jsa = _fake_archive(cache, cds.archive_key() or "", b"x" * 1000)
    flags = cds.java_options({})
    assert flags == f"-XX:SharedArchiveFile={jsa} -Xshare:auto {cds.QUIET}"
    assert flags in session_flags()  # appended after the Log4j option


def test_damaged_or_foreign_archive_is_not_used(cache: Path) -> None:
    key = cds.archive_key() or ""
    _fake_archive(cache, key, b"x" * 1000, recorded=2000)  # truncated: would SIGBUS the JVM
    assert cds.java_options({}) == ""
    _fake_archive(cache, key, b"x" * 2000)
    assert cds.java_options({}) != ""
    assert cds.java_options({}, enabled=False) == ""
    assert cds.java_options({"spark.jars": "/opt/x.jar"}) == ""  # another class path
    assert cds.java_options({"spark.driver.extraClassPath": "/opt/y"}) == ""
    assert "SharedArchiveFile" not in session_flags(class_data_sharing=False)


def test_only_our_unusable_archives_are_removed(cache: Path, tmp_path: Path) -> None:
    here = str(cds._spark_jars().resolve())

    def ours(key: str, jars: str) -> Path:
        jsa = _fake_archive(cache, key, b"old")
        meta = {"written_by": cds.WRITER, "size": 3, "key": key, "jars": jars}
        jsa.with_suffix(".json").write_text(json.dumps(meta))
        return jsa

    stale = ours("0" * 16, here)  # an older JDK/Spark for this environment
    gone = ours("1" * 16, str(tmp_path / "deleted-venv" / "jars"))  # its venv was deleted
    live = ours("2" * 16, str(tmp_path))  # another checkout's environment, still there
    user = cache / "spark-mine.jsa"  # no sidecar: not ours
    user.write_bytes(b"keep")
    odd = cache / "spark-3333333333333333.json"  # a sidecar naming another key
    odd.write_text(json.dumps({"size": 1, "key": "4" * 16, "jars": here}))
    (cache / "spark-3333333333333333.jsa").write_bytes(b"k")
    # A sidecar without our writer's mark, or describing another file, proves nothing.
    unmarked = _fake_archive(cache, "5" * 16, b"abc")
    unmarked.with_suffix(".json").write_text(json.dumps({"size": 3, "key": "5" * 16}))
    replaced = ours("6" * 16, here)
    replaced.chmod(0o644)
    replaced.write_bytes(b"someone else's bigger file")
    current = ours("f" * 16, here)
    cds._remove_older("f" * 16)
    assert unmarked.exists() and replaced.exists()
    for jsa in (stale, gone):
        assert not jsa.exists() and not jsa.with_suffix(".json").exists()
    assert live.exists() and user.exists() and odd.exists() and current.exists()
    assert (cache / "spark-3333333333333333.jsa").exists()


def test_each_environment_has_its_own_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = cds.archive_key()
    jars = cds._spark_jars()
    copy = tmp_path / "jars"
    copy.mkdir()
    for jar in jars.glob("*.jar"):
        (copy / jar.name).symlink_to(jar)
    monkeypatch.setattr(cds, "_spark_jars", lambda: copy)
    assert cds.archive_key() not in (None, key)  # same jars elsewhere: another class path


def session_flags(**kw: object) -> str:
    """The driver's extraJavaOptions build_spark_session would start the JVM with."""
    cfg = SparkConfig(**kw)  # type: ignore[arg-type]
    settings = session.session_settings(cfg)
    session._quiet_logging(settings)
    session._class_data_sharing(settings, cfg.class_data_sharing)
    return settings.get("spark.driver.extraJavaOptions", "")


def test_an_archive_that_fails_its_check_is_not_kept(
    cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    calls: list[str] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
        opts = cmd[-1]
        calls.append(opts)
        assert kw["cwd"] != str(Path.cwd())  # JVM crash logs land in a scratch folder
        if "ArchiveClassesAtExit=" in opts:  # the writing JVM: leaves a (damaged) archive
            path = opts.split("ArchiveClassesAtExit=")[1].split()[0]
            Path(path).write_bytes(b"half an archive")
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return subprocess.CompletedProcess(cmd, 134, "", "SIGBUS\nfatal error")  # -Xshare:on

    monkeypatch.setattr(cds.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="checking the archive .* failed: SIGBUS"):
        cds.build()
    assert len(calls) == 2 and "-Xshare:on" in calls[1]
    assert list(cache.iterdir()) == []  # no archive, no sidecar, no temporary file
    assert cds.java_options({}) == ""


def test_an_unwritable_cache_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # the cache cannot be created under it
    assert cds.main([]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not built" in err[0] and "XDG_CACHE_HOME" in err[0]
    assert blocker.read_text() == "not a folder"
