"""Output ownership: a stage never deletes or replaces what it did not write (issue 12).

Every case runs on real folders and checks that the user's files are still there, byte for
byte, afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import outputs
from pipeline.errors import OutputError
from pipeline.spark.commit import StagedOutput


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def publish(out: Path, stage: str = "parse", files: dict[str, bytes] | None = None, **kw):
    """Publish ``files`` to ``out`` through StagedOutput; return the StagedOutput."""
    staged = StagedOutput(str(out), stage, **kw)
    with staged as s:
        for name, data in (files or {"part-00000.parquet": b"rows"}).items():
            if "/" in name:
                s.fs.create_dir(f"{s.staging}/{name.rsplit('/', 1)[0]}", recursive=True)
            s.write_bytes(name, data)
    return staged


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A user's folder that has nothing to do with the pipeline."""
    d = tmp_path / "photos"
    (d / "2025").mkdir(parents=True)
    (d / "cat.jpg").write_bytes(os.urandom(2048))
    (d / "2025" / "dog.jpg").write_bytes(os.urandom(1024))
    return d


def test_foreign_folder_is_refused_and_left_untouched(photos: Path) -> None:
    before = snapshot(photos)
    with pytest.raises(
        OutputError, match=r"holds files this tool did not write \(2025/, cat\.jpg\)"
    ):
        publish(photos, overwrite=True)
    assert snapshot(photos) == before
    assert [p.name for p in photos.parent.iterdir()] == ["photos"]  # no staging left


def test_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    with pytest.raises(OutputError, match="is a file"):
        publish(f, overwrite=True)
    assert f.read_text() == "mine"


def test_new_and_empty_folders_are_written(tmp_path: Path) -> None:
    publish(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    publish(tmp_path / "empty")
    for name in ("new", "empty"):
        marker = json.loads((tmp_path / name / outputs.MARKER).read_text())
        assert marker["stage"] == "parse" and marker["state"] == "complete"
        assert marker["files"] == ["_SUCCESS", outputs.MARKER, "part-00000.parquet"]


def test_previous_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    publish(out, files={"part-00000.parquet": b"old"})
    with pytest.raises(OutputError, match="holds a previous parse output; pass --overwrite"):
        publish(out, files={"part-00000.parquet": b"new"})
    assert (out / "part-00000.parquet").read_bytes() == b"old"
    publish(out, files={"part-00000.parquet": b"new"}, overwrite=True)
    assert (out / "part-00000.parquet").read_bytes() == b"new"


def test_another_stages_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "shards"
    publish(out, stage="featurise", files={"manifest.json": b"{}"})
    with pytest.raises(OutputError, match="holds a featurise output, not a parse one"):
        publish(out, overwrite=True)
    assert (out / "manifest.json").read_bytes() == b"{}"


def test_replacing_keeps_foreign_files_and_deletes_only_owned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shards"
    publish(
        out,
        stage="featurise",
        files={
            "train/part-00000-of-00002.arrow": b"a",
            "train/part-00001-of-00002.arrow": b"b",
            "manifest.json": b"1",
        },
    )
    (out / "README.md").write_text("my notes")
    (out / "train" / "mine.txt").write_text("also mine")
    publish(
        out,
        stage="featurise",
        overwrite=True,
        files={"train/part-00000-of-00001.arrow": b"c", "manifest.json": b"2"},
    )
    assert sorted(snapshot(out)) == [
        "README.md",
        "_SUCCESS",
        outputs.MARKER,
        "manifest.json",
        "train/mine.txt",
        "train/part-00000-of-00001.arrow",
    ]
    assert (out / "README.md").read_text() == "my notes"
    assert (out / "train" / "mine.txt").read_text() == "also mine"
    assert "kept them in place: README.md, train/mine.txt" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]  # nothing aside


def test_unreadable_marker_proves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    publish(out)
    (out / outputs.MARKER).write_text("not json")
    before = snapshot(out)
    with pytest.raises(OutputError, match="did not write"):
        publish(out, overwrite=True)
    assert snapshot(out) == before


def test_marker_listing_outside_paths_proves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    out.mkdir()
    (tmp_path / "precious.txt").write_text("keep")
    rec = outputs.marker_record("parse", ["../precious.txt"])
    (out / outputs.MARKER).write_bytes(outputs.marker_bytes(rec))
    with pytest.raises(OutputError, match="did not write"):
        publish(out, overwrite=True)
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_output_holding_or_inside_an_input_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    dump = data / "enwiki-pages.xml.bz2"
    dump.write_bytes(b"BZh9")
    cases = [
        (data, [str(dump)], "holds the input"),  # pipeline parse --input data/dump --out data
        (dump, [str(dump)], "is the input"),
        (data / "pages", [str(data)], "lies inside the input"),
        (data / "pages", [str(data / "*")], "matches the input pattern"),
        (data / "x" / "pages", [str(data / "*")], "matches the input pattern"),
    ]
    for out, inputs, why in cases:
        with pytest.raises(OutputError, match=why):
            outputs.check_not_input("parse", str(out), inputs)
    outputs.check_not_input("parse", str(tmp_path / "pages"), [str(dump), str(data / "*.bz2")])
    assert dump.read_bytes() == b"BZh9"


def test_symlinks_and_uris_are_resolved(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    with pytest.raises(OutputError, match="lies inside the input"):
        outputs.check_not_input("featurise", str(tmp_path / "link" / "shards"), [str(data)])
    with pytest.raises(OutputError, match="is the input"):
        outputs.check_not_input("featurise", f"file://{data}", [str(tmp_path / "link")])
    with pytest.raises(OutputError, match="lies inside the input"):
        outputs.check_not_input("parse", "s3a://bucket/wiki/pages", ["s3://bucket/wiki/"])
    outputs.check_not_input("parse", "s3a://bucket/wiki/pages", ["s3://other/wiki/"])
    outputs.check_not_input("parse", "hdfs://nn:8020/a/pages", ["hdfs://nn2:8020/a"])


def test_leftovers_of_killed_runs_are_removed_only_when_provably_ours(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = tmp_path / ".pages.staging-aaaa"
    ours.mkdir()
    (ours / "part-00000-1-0.parquet").write_bytes(b"half")
    rec = outputs.staging_record("parse", str(out))
    rec["pid"] = int(dead)
    (ours / outputs.MARKER).write_bytes(outputs.marker_bytes(rec))
    live = tmp_path / ".pages.staging-bbbb"  # a live run's (this process)
    live.mkdir()
    (live / outputs.MARKER).write_bytes(
        outputs.marker_bytes(outputs.staging_record("parse", str(out)))
    )
    other_stage = tmp_path / ".pages.staging-cccc"
    other_stage.mkdir()
    (other_stage / outputs.MARKER).write_bytes(outputs.marker_bytes(dict(rec, stage="featurise")))
    unmarked = tmp_path / ".pages.staging-dddd"
    unmarked.mkdir()
    (unmarked / "x").write_text("someone's")
    staged = publish(out)
    assert staged.removed_leftovers == [str(ours)]
    assert not ours.exists()
    assert live.is_dir() and other_stage.is_dir() and (unmarked / "x").read_text() == "someone's"


def test_failed_body_publishes_nothing_and_keeps_the_old_output(tmp_path: Path) -> None:
    out = tmp_path / "pages"
    publish(out, files={"part-00000.parquet": b"old"})
    before = snapshot(out)

    def job() -> None:
        with StagedOutput(str(out), "parse", overwrite=True) as s:
            s.write_bytes("part-00000.parquet", b"half")
            raise RuntimeError("task failed")

    with pytest.raises(RuntimeError):
        job()
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pages"]


def test_run_folder_claims(tmp_path: Path, photos: Path) -> None:
    shards = tmp_path / "shards"
    shards.mkdir()
    run = tmp_path / "runs" / "gpt"
    outputs.claim_run_folder(str(run), str(shards))
    assert json.loads((run / outputs.MARKER).read_text())["stage"] == "train"
    (run / "metrics.jsonl").write_text("{}\n")
    outputs.claim_run_folder(str(run), str(shards))  # a previous run: resumed
    before = snapshot(photos)
    with pytest.raises(OutputError, match="did not write"):
        outputs.claim_run_folder(str(photos), str(shards))
    assert snapshot(photos) == before and not (photos / outputs.MARKER).exists()
    with pytest.raises(OutputError, match="lies inside the input"):
        outputs.claim_run_folder(str(shards / "run"), str(shards))
    with pytest.raises(OutputError, match="holds the input"):
        outputs.claim_run_folder(str(tmp_path), str(shards))
