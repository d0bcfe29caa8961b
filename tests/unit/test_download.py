"""``pipeline download``: a local mirror on 127.0.0.1 in Wikimedia's layout serves the real
elwikivoyage multistream sample; resume, Range, dropped connections, checksums, jobs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
import yaml

from pipeline import config as cfgmod
from pipeline import download as dl
from pipeline.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from pipeline.download import ChecksumError, DownloadError, download_dump
from pipeline.errors import OutputError
from pipeline.outputs import MARKER, marker_bytes, marker_record
from pipeline.stage_config import DownloadConfig, DumpKind
from pipeline.wiki import sources
from tests.support.mirror import Mirror, serve, sha1, status_json

WIKI, DATE = "elwikivoyage", "20260101"
SAMPLE = "elwikivoyage-pages-articles-multistream.xml-p2566p2583.bz2"
SAMPLE_INDEX = "elwikivoyage-pages-articles-multistream-index.txt-p2566p2583.bz2"
SAMPLE_PLAIN = "elwikivoyage-pages-articles.xml-p2566p2583.bz2"
DUMP = f"{WIKI}-{DATE}-pages-articles-multistream.xml.bz2"
INDEX = f"{WIKI}-{DATE}-pages-articles-multistream-index.txt.bz2"


def sha1sums(folder: Path, names: list[str]) -> None:
    lines = [f"{sha1((folder / n).read_bytes())}  {n}\n" for n in names]
    (folder / f"{WIKI}-{folder.name}-sha1sums.txt").write_text("".join(lines), encoding="utf-8")


def build_mirror(root: Path, samples: Path) -> None:
    """The real samples copied under mirror names (at test time, into tmp_path)."""
    dated = root / WIKI / DATE
    dated.mkdir(parents=True)
    shutil.copy(samples / SAMPLE, dated / DUMP)
    shutil.copy(samples / SAMPLE_INDEX, dated / INDEX)
    plain = f"{WIKI}-{DATE}-pages-articles.xml.bz2"
    shutil.copy(samples / SAMPLE_PLAIN, dated / plain)
    status_json(
        dated,
        {
            "articlesmultistreamdump": ("done", [DUMP, INDEX]),
            "articlesdump": ("done", [plain]),
            "xmlstubsdump": ("done", []),
            "metahistory7zdump": ("waiting", []),
        },
    )
    sha1sums(dated, [DUMP, INDEX, plain])
    latest = root / WIKI / "latest"
    latest.mkdir()
    shutil.copy(samples / SAMPLE, latest / f"{WIKI}-latest-pages-articles-multistream.xml.bz2")
    (latest / f"{WIKI}-latest-pages-articles-multistream.xml.bz2-rss.xml").write_text(
        f"""<?xml version="1.0"?><rss version="2.0"><channel>
<title>http://dumps.wikimedia.org/{WIKI}/latest/{WIKI}-latest-pages-articles-multistream.xml.bz2</title>
<link>http://dumps.wikimedia.org/{WIKI}/latest/</link><item>
<title>http://dumps.wikimedia.org/{WIKI}/{DATE}/{DUMP}</title>
<link>http://dumps.wikimedia.org/{WIKI}/{DATE}</link></item></channel></rss>""",
        encoding="utf-8",
    )
    # an unfinished run: the multistream job is still running
    running = root / WIKI / "20260120"
    running.mkdir()
    status_json(running, {"articlesmultistreamdump": ("in-progress", [])})
    # an older run without dumpstatus.json: only the sha1sums, recombined file + 2 parts
    old = root / WIKI / "20251201"
    old.mkdir()
    names = []
    for suffix in ("", "1.xml-p1p2565", "2.xml-p2566p2583"):
        stem = f"{WIKI}-20251201-pages-articles-multistream"
        d = f"{stem}{suffix or '.xml'}.bz2"
        i = f"{stem}-index{suffix.replace('.xml', '.txt') or '.txt'}.bz2"
        shutil.copy(samples / SAMPLE, old / d)
        shutil.copy(samples / SAMPLE_INDEX, old / i)
        names += [d, i]
    sha1sums(old, names)


@pytest.fixture
def mirror(tmp_path: Path, wiki_data: Path) -> Iterator[Mirror]:
    build_mirror(tmp_path / "mirror", wiki_data)
    with serve(tmp_path / "mirror") as server:
        yield server


def cfg_for(mirror: Mirror, **kw: object) -> DownloadConfig:
    base = {
        "wiki": WIKI,
        "date": DATE,
        "mirror": mirror.url,
        "retries": 2,
        "backoff_s": 0.0,
        "timeout_s": 10.0,
    }
    return DownloadConfig(**{**base, **kw})


def earlier_part(folder: Path, data: bytes) -> None:
    """A ``.part`` left by an earlier run of this tool (listed in the folder's marker)."""
    folder.mkdir(parents=True)
    (folder / f"{DUMP}.part").write_bytes(data)
    rec = marker_record("download", [DUMP, f"{DUMP}.part"])
    (folder / MARKER).write_bytes(marker_bytes(rec))


def fetch(mirror: Mirror, out: Path, **kw: object) -> tuple[list[Path], list[str]]:
    logs: list[str] = []
    paths = download_dump(cfg_for(mirror, **kw), out, progress=False, log=logs.append)
    return paths, logs


def test_download_verifies_and_pairs_as_multistream(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    paths, logs = fetch(mirror, tmp_path / "dumps")
    folder = tmp_path / "dumps" / WIKI / DATE
    assert paths == [folder / DUMP]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        MARKER,
        INDEX,
        DUMP,
    ]
    assert set(json.loads((folder / MARKER).read_text())["files"]) >= {INDEX, DUMP}
    assert (folder / DUMP).read_bytes() == (wiki_data / SAMPLE).read_bytes()
    assert (folder / INDEX).read_bytes() == (wiki_data / SAMPLE_INDEX).read_bytes()
    assert all(r.range is None for r in mirror.log)
    assert any("sha1 verified" in m for m in logs)
    # pipeline parse finds the index beside the dump and splits it by streams
    files = sources.expand_inputs([str(folder)])
    assert [Path(u).name for u, _ in files] == [DUMP]
    tasks = sources.plan_tasks(files, split_bytes=1)
    assert len(tasks) > 1 and {t["kind"] for t in tasks} == {"range"}
    assert sum(t["expected_pages"] for t in tasks) == 17


def test_latest_resolves_to_the_dated_dump(mirror: Mirror, tmp_path: Path) -> None:
    paths, _ = fetch(mirror, tmp_path, date="latest")
    assert paths == [tmp_path / WIKI / DATE / DUMP]
    assert mirror.gets(f"{WIKI}-latest-pages-articles-multistream.xml.bz2-rss.xml")
    assert not mirror.gets(f"{WIKI}-latest-pages-articles-multistream.xml.bz2")


def test_resume_after_dropped_connection(mirror: Mirror, tmp_path: Path, wiki_data: Path) -> None:
    mirror.drop_after[DUMP] = [5000]
    mirror.drop_after["dumpstatus.json"] = [100]  # metadata is retried too
    paths, logs = fetch(mirror, tmp_path)
    assert len(mirror.gets("dumpstatus.json")) == 2
    first, second = mirror.gets(DUMP)
    assert (first.range, first.status) == (None, 200)
    assert (second.range, second.status) == ("bytes=5000-", 206)
    assert paths[0].read_bytes() == (wiki_data / SAMPLE).read_bytes()
    assert any("connection closed after 5000" in m for m in logs)


def test_resume_a_part_left_by_an_earlier_run(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    folder = tmp_path / WIKI / DATE
    earlier_part(folder, (wiki_data / SAMPLE).read_bytes()[:4000])
    paths, _ = fetch(mirror, tmp_path)
    assert [r.range for r in mirror.gets(DUMP)] == ["bytes=4000-"]
    assert paths[0].read_bytes() == (wiki_data / SAMPLE).read_bytes()
    assert not (folder / f"{DUMP}.part").exists()


def test_server_ignoring_range_restarts_from_zero(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    mirror.ignore_range = True
    folder = tmp_path / WIKI / DATE
    earlier_part(folder, (wiki_data / SAMPLE).read_bytes()[:4000])
    paths, logs = fetch(mirror, tmp_path)
    assert [(r.range, r.status) for r in mirror.gets(DUMP)] == [("bytes=4000-", 200)]
    assert paths[0].read_bytes() == (wiki_data / SAMPLE).read_bytes()
    assert any("ignored the Range request" in m for m in logs)


def test_bad_resumed_prefix_is_fetched_again_from_zero(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    folder = tmp_path / WIKI / DATE
    earlier_part(folder, b"\0" * 4000)
    paths, _ = fetch(mirror, tmp_path)
    assert [r.range for r in mirror.gets(DUMP)] == ["bytes=4000-", None]
    assert paths[0].read_bytes() == (wiki_data / SAMPLE).read_bytes()


def test_wrong_checksum_names_file_and_both_sha1s(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    mirror.corrupt.add(DUMP)
    good = bytearray((wiki_data / SAMPLE).read_bytes())
    expected = sha1(bytes(good))
    good[len(good) // 2] ^= 0xFF
    with pytest.raises(ChecksumError) as e:
        fetch(mirror, tmp_path)
    msg = str(e.value)
    assert DUMP in msg and expected in msg and sha1(bytes(good)) in msg
    folder = tmp_path / WIKI / DATE
    assert not (folder / DUMP).exists() and not (folder / f"{DUMP}.part").exists()


def test_gives_up_after_retries_and_keeps_the_part(mirror: Mirror, tmp_path: Path) -> None:
    mirror.drop_after[DUMP] = [0] * 10
    with pytest.raises(DownloadError, match="giving up after 2 retries") as e:
        fetch(mirror, tmp_path)
    assert "run the same command again" in str(e.value)
    assert len(mirror.gets(DUMP)) == 3
    assert not (tmp_path / WIKI / DATE / DUMP).exists()


def test_already_downloaded_is_skipped_and_a_bad_copy_replaced(
    mirror: Mirror, tmp_path: Path, wiki_data: Path
) -> None:
    fetch(mirror, tmp_path)
    mirror.log.clear()
    _, logs = fetch(mirror, tmp_path)
    assert f"{DUMP}: up to date" in logs and f"{INDEX}: up to date" in logs
    assert not mirror.gets(DUMP) and not mirror.gets(INDEX)
    path = tmp_path / WIKI / DATE / DUMP
    path.write_bytes(b"x" * path.stat().st_size)
    with pytest.raises(OutputError, match="no longer matches the published sha1; pass --overw"):
        fetch(mirror, tmp_path)
    assert path.read_bytes() == b"x" * path.stat().st_size and not mirror.gets(DUMP)
    _, logs = fetch(mirror, tmp_path, overwrite=True)
    assert len(mirror.gets(DUMP)) == 1
    assert path.read_bytes() == (wiki_data / SAMPLE).read_bytes()


def test_files_this_tool_did_not_write_are_never_replaced(mirror: Mirror, tmp_path: Path) -> None:
    folder = tmp_path / WIKI / DATE
    folder.mkdir(parents=True)
    (folder / DUMP).write_bytes(b"the user's own file")
    for overwrite in (False, True):
        with pytest.raises(OutputError, match="was not written by pipeline download and does"):
            fetch(mirror, tmp_path, overwrite=overwrite)
    assert (folder / DUMP).read_bytes() == b"the user's own file"
    (folder / DUMP).unlink()
    (folder / f"{DUMP}.part").write_bytes(b"someone else's partial file")
    with pytest.raises(OutputError, match=r"\.part exists and was not written by pipeline"):
        fetch(mirror, tmp_path, overwrite=True)
    assert (folder / f"{DUMP}.part").read_bytes() == b"someone else's partial file"
    assert not mirror.gets(DUMP)


def test_missing_job_is_a_clear_error(mirror: Mirror, tmp_path: Path) -> None:
    match = r"no job 'metacurrentdump' \(kind pages-meta-current\)"
    with pytest.raises(DownloadError, match=match):
        fetch(mirror, tmp_path, kind="pages-meta-current")


def test_unfinished_job_is_a_clear_error(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="is 'in-progress', not 'done'"):
        fetch(mirror, tmp_path, date="20260120")
    assert not (tmp_path / WIKI / "20260120").exists()


def test_other_kind_takes_its_own_job(mirror: Mirror, tmp_path: Path, wiki_data: Path) -> None:
    paths, _ = fetch(mirror, tmp_path, kind="pages-articles")
    assert [p.name for p in paths] == [f"{WIKI}-{DATE}-pages-articles.xml.bz2"]
    assert paths[0].read_bytes() == (wiki_data / SAMPLE_PLAIN).read_bytes()


def test_sha1sums_fallback_takes_the_parts_with_their_indexes(
    mirror: Mirror, tmp_path: Path
) -> None:
    paths, _ = fetch(mirror, tmp_path, date="20251201")
    stem = f"{WIKI}-20251201-pages-articles-multistream"
    assert [p.name for p in paths] == [f"{stem}1.xml-p1p2565.bz2", f"{stem}2.xml-p2566p2583.bz2"]
    assert mirror.gets("dumpstatus.json")[0].status == 404
    assert not mirror.gets(f"{stem}.xml.bz2")  # the recombined file is not fetched
    indexes = [f"{stem}-index1.txt-p1p2565.bz2", f"{stem}-index2.txt-p2566p2583.bz2"]
    assert [sources.index_for(str(p)) for p in paths] == [str(paths[0].parent / i) for i in indexes]


def test_unknown_date_and_unknown_latest(mirror: Mirror, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="neither .*dumpstatus.json nor .*sha1sums.txt"):
        fetch(mirror, tmp_path, date="19990101")
    with pytest.raises(DownloadError, match="cannot resolve 'latest'.*--date"):
        fetch(mirror, tmp_path, wiki="frwiki", date="latest")


def test_not_enough_disk_space(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 10))
    with pytest.raises(DownloadError, match="only 10 free"):
        fetch(mirror, tmp_path)
    assert not mirror.gets(DUMP)


def test_config_validation_and_docs() -> None:
    docs = cfgmod.field_docs(DownloadConfig)
    assert all(docs.get(f.name) for f in dataclasses.fields(DownloadConfig))
    assert set(dl.JOBS) == set(get_args(DumpKind))
    for bad, match in [
        ({"wiki": "conf/local.yaml"}, "give the wiki first"),
        ({"date": "2026-01-01"}, "YYYYMMDD"),
        ({"mirror": "ftp://x"}, "http"),
        ({"retries": -1}, "retries"),
        ({"timeout_s": 0}, "timeout_s"),
    ]:
        with pytest.raises(ValueError, match=match):
            DownloadConfig(**bad)


def test_cli_download(
    mirror: Mirror, tmp_path: Path, capsys: pytest.CaptureFixture[str], wiki_data: Path
) -> None:
    argv = ["download", WIKI, "--date", DATE, "--mirror", mirror.url, "--out", str(tmp_path)]
    assert main([*argv, "download.backoff_s=0"]) == EXIT_OK
    out = capsys.readouterr()
    assert out.out.split() == [str(tmp_path / WIKI / DATE / DUMP)]
    assert "pipeline parse --input" in out.err
    assert main([*argv, "--kind", "pages-meta-current"]) == EXIT_FAILED
    assert "pipeline download: error:" in capsys.readouterr().err


def test_cli_flags_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["download", "simplewiki", "--kind", "pages-articles", "--out", "d", "--print-config"]
    assert main(argv) == EXIT_OK
    resolved = yaml.safe_load(capsys.readouterr().out)["download"]
    assert (resolved["wiki"], resolved["date"], resolved["kind"]) == (
        "simplewiki",
        "latest",
        "pages-articles",
    )
    assert resolved["out"] == "d" and resolved["mirror"] == "https://dumps.wikimedia.org"
    assert main(["download"]) == EXIT_USAGE
    assert "name the wiki" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["download", "--help"])
    assert e.value.code == 0 and "usage: pipeline download" in capsys.readouterr().out
