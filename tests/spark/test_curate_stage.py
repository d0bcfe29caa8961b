"""The curate stage on local Spark over real parsed pages (the English sample and the German
and French dbpedia minidumps) plus real articles copied exactly, many times, and with
known edits: accounting, exact and near dedup, language verdicts, determinism under
local[1] and local[2] (through ``pipeline curate``), and featurise reading the result."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.contracts.curated import curated_schema, read_curated_dir
from pipeline.contracts.pages import PAGES_SCHEMA, read_pages_dir
from pipeline.curate import text as T
from pipeline.errors import OutputError
from pipeline.spark.curate_stage import run_curate
from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config
from tests.support.curate_data import COPIES, EDITS, EN, with_copies

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pages(spark, wiki_data: Path, tmp_path_factory) -> Path:
    """Parsed real pages plus one part of copies of real articles (``ids >= 10**9``)."""
    base = tmp_path_factory.mktemp("curate")
    inputs = [
        wiki_data / EN,
        *(wiki_data / "dbpedia-minidumps" / f"{c}.xml.bz2" for c in "de fr".split()),
    ]
    parsed = base / "parsed"
    cfg = load_config(
        overrides=[f"parse.input=[{','.join(map(str, inputs))}]", f"parse.out={parsed}"]
    )
    run_parse(cfg, progress=False)
    return with_copies(parsed, base / "pages")


def curate(pages_dir: Path, out: Path, *overrides: str) -> dict:
    cfg = load_config(overrides=[f"curate.pages={pages_dir}", f"curate.out={out}", *overrides])
    return run_curate(cfg, progress=False)


@pytest.fixture(scope="module")
def curated(pages: Path, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out") / "curated"
    return out, curate(pages, out)


def by_key(folder: Path) -> dict[int, dict]:
    rows = pq.read_table(folder).to_pylist()
    return {r["page_id"]: r for r in rows if r["source"].endswith(EN)}


def test_every_row_accounted_once_in_input_order(pages: Path, curated) -> None:
    out, stats = curated
    table = read_curated_dir(str(out))
    inputs = read_pages_dir(str(pages))
    assert [f.rsplit("/", 1)[-1] for f in table.files] == [
        f.rsplit("/", 1)[-1] for f in inputs.files
    ]
    for src, dst in zip(inputs.files, table.files, strict=True):
        a, b = pq.read_table(src), pq.read_table(dst)
        assert b.schema.remove_metadata().equals(curated_schema())
        assert b.select(PAGES_SCHEMA.names).to_pylist() == a.to_pylist()
        cs = b.column("curate_status").to_pylist()
        ok = [s == "ok" for s in a.column("status").to_pylist()]
        assert all((c == "skipped") == (not o) for c, o in zip(cs, ok, strict=True))
    assert stats["rows"] == sum(stats["status"].values()) == inputs.stats.totals.rows
    assert stats["status"]["ok"] >= 0.9 * (
        inputs.stats.totals.status["ok"] - len(EDITS) - COPIES - 3
    )


def test_exact_and_near_duplicates_point_at_the_kept_original(pages: Path, curated) -> None:
    out, stats = curated
    rows = by_key(out)
    copies = [r for pid, r in rows.items() if pid >= 10**9 + len(EDITS) + 3]
    assert len(copies) == COPIES
    assert {r["curate_status"] for r in copies} == {"duplicate"}
    (original,) = {r["dup_of"] for r in copies}
    assert rows[int(original.split(":")[1])]["curate_status"] == "ok"  # smallest page_id kept
    upper = rows[10**9 + len(EDITS) + 2]
    assert upper["curate_status"] == "duplicate" and upper["dup_of"].startswith("enwiki:")
    n = load_config().curate.shingle_words
    near = 0
    for i in range(len(EDITS) + 2):
        copy = rows[10**9 + i]
        source = rows[
            int(next(p for p, r in rows.items() if p < 10**9 and r["title"] == copy["title"]))
        ]
        j = T.jaccard(T.shingles(copy["text"], n), T.shingles(source["text"], n))
        expected = "near_duplicate" if j >= 0.8 else "ok"
        assert copy["curate_status"] == expected, (EDITS[i] if i < len(EDITS) else i, j)
        if expected == "near_duplicate":
            near += 1
            assert (
                copy["dup_of"] == f"enwiki:{source['page_id']}" and source["curate_status"] == "ok"
            )
            assert copy["curate_reason"].startswith("near_duplicate: Jaccard >= 0.8")
    assert 3 <= near < len(EDITS) + 2  # the reordered, boilerplate and lightly edited copies
    assert stats["near_dup"]["verified_pairs"] >= near


def test_foreign_language_pages_are_flagged_not_removed(curated) -> None:
    out, stats = curated
    rows = pq.read_table(out).to_pylist()
    foreign = [
        r
        for r in rows
        if r["source"].endswith(("de.xml.bz2", "fr.xml.bz2")) and r["status"] == "ok"
    ]
    assert {r["lang"] for r in foreign} == {"de", "fr"}  # the minidumps' header says enwiki
    assert all(r["curate_status"] == "ok" for r in foreign)
    assert all(r["curate_reason"].startswith("lang_mismatch: detected") for r in foreign)
    assert stats["languages"]["de"]["kept"] >= 1 and stats["rules"]["lang_mismatch"] >= 2


def test_same_bytes_under_local1_via_the_cli_and_refuses_to_overwrite(
    pages: Path, curated, tmp_path: Path
) -> None:
    out, _ = curated
    other = tmp_path / "curated1"
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "curate",
        "--pages",
        str(pages),
        "--out",
        str(other),
    ]
    cmd += ["spark.master=local[1]", "spark.ui_enabled=false"]
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run(
        cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pipeline curate:" in proc.stdout and "near_duplicate" in proc.stdout

    def digests(folder: Path) -> dict[str, str]:
        skip = {"_config.yaml", "_pipeline_output.json"}  # the config names the output path
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.iterdir()
            if p.name not in skip
        }

    assert digests(other) == digests(out)
    with pytest.raises(OutputError):
        curate(pages, out)


def test_language_filter_removes_other_languages(pages: Path, tmp_path: Path) -> None:
    stats = curate(pages, tmp_path / "en", "curate.languages=[en]", "curate.near_dedup=false")
    rows = pq.read_table(tmp_path / "en").to_pylist()
    removed = [r for r in rows if r["curate_status"] == "language"]
    assert {r["lang"] for r in removed} >= {"de", "fr"}
    assert all(r["curate_reason"].startswith("language: ") for r in removed)
    assert stats["status"]["near_duplicate"] == 0 and stats["status"]["duplicate"] >= COPIES


def test_featurise_reads_only_the_curated_ok_rows(curated, tmp_path: Path) -> None:
    from pipeline.spark.featurise_stage import run_featurise

    out, stats = curated
    cfg = load_config(
        overrides=[
            f"featurise.pages={out}",
            f"featurise.out={tmp_path / 'shards'}",
            "featurise.vocab_size=1000",
            "featurise.block_size=64",
            "model.block_size=64",
            "featurise.shard_bytes=1048576",
        ]
    )
    m = run_featurise(cfg, progress=False)
    assert m["pages"]["ok_pages"] == stats["status"]["ok"]
