"""Our tables open, unchanged, in the tools users already have (issue 13, part 1).

The pages folder holds Parquet parts plus sidecars whose names start with ``_``
(``_stats.json``, ``_config.yaml``, ``_pipeline_output.json``, ``_SUCCESS``), which every
reader below skips. Shards are read with plain ``pyarrow.ipc`` (the README's recipe).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.contracts.pages import PAGES_SCHEMA, PagesError, read_pages_dir
from pipeline.spark.featurise_stage import run_featurise
from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DE = "dewiki-20170701-sample.xml"
ROWS, OK = 206 + 79, 106 + 20  # SOURCES.md: 206 pages in EN, 79 in DE (20 in ns 0, ok)


@pytest.fixture(scope="module")
def pages(spark, wiki_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("readers") / "pages"
    inputs = f"parse.input=[{wiki_data / EN}, {wiki_data / DE}]"
    run_parse(load_config(overrides=[inputs, f"parse.out={out}"]), progress=False)
    assert len(list(out.glob("part-*.parquet"))) == 2  # several parts, as on a cluster
    totals = read_pages_dir(str(out)).stats.totals
    assert (totals.rows, totals.status["ok"]) == (ROWS, OK)
    assert {p.name for p in out.iterdir() if not p.name.startswith("part-")} == {
        "_SUCCESS",
        "_stats.json",
        "_config.yaml",
        "_pipeline_output.json",
    }
    return out


def page_ids(values) -> list[int]:
    return sorted(int(v) for v in values)


def test_pyarrow_reads_the_folder(pages: Path) -> None:
    table = pq.read_table(pages)
    assert table.num_rows == ROWS and table.schema.remove_metadata().equals(PAGES_SCHEMA)
    assert pq.ParquetDataset(pages).read().num_rows == ROWS
    expected = page_ids(table.column("page_id").to_pylist())
    assert page_ids(pq.ParquetDataset(pages).read().column("page_id").to_pylist()) == expected


def test_pandas_reads_the_folder(pages: Path) -> None:
    import pandas as pd

    df = pd.read_parquet(pages)
    assert len(df) == ROWS and (df["status"] == "ok").sum() == OK


def test_spark_reads_the_folder(spark, pages: Path) -> None:
    df = spark.read.parquet(str(pages))
    assert df.count() == ROWS and df.where("status = 'ok'").count() == OK


def test_duckdb_reads_the_parts(pages: Path) -> None:
    import duckdb

    con = duckdb.connect()
    n, ok = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE status = 'ok') "
        f"FROM read_parquet('{pages}/*.parquet')"
    ).fetchone()
    assert (n, ok) == (ROWS, OK)


def test_hugging_face_datasets_reads_the_folder(pages: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # its cache stays in the test's folder
    import datasets

    cache = str(tmp_path / "cache")
    # The folder itself (the builder is inferred and keeps *.parquet), or an explicit glob.
    # load_dataset("parquet", data_dir=...) is the one form that fails: datasets skips only
    # dot-files, so it feeds Spark's _SUCCESS to the Parquet reader (README, "Reading").
    for ds in (
        datasets.load_dataset(str(pages), split="train", cache_dir=cache),
        datasets.load_dataset(
            "parquet", data_files=f"{pages}/*.parquet", split="train", cache_dir=cache
        ),
    ):
        assert ds.num_rows == ROWS and set(PAGES_SCHEMA.names) <= set(ds.column_names)


def test_old_layout_is_named(pages: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for p in pages.iterdir():
        name = {"_stats.json": "stats.json", "_config.yaml": "config.yaml"}.get(p.name, p.name)
        (old / name).write_bytes(p.read_bytes())
    with pytest.raises(PagesError, match="old layout .*stats.json.*re-run `pipeline parse`"):
        read_pages_dir(str(old))


def test_shards_read_with_plain_pyarrow_ipc(pages: Path, tmp_path: Path) -> None:
    """The README's recipe: the manifest lists the shards; each is an Arrow IPC file."""
    out = tmp_path / "shards"
    cfg = load_config(
        overrides=[
            f"featurise.pages={pages}",
            f"featurise.out={out}",
            "featurise.vocab_size=1000",
            "featurise.block_size=64",
            "model.block_size=64",
            "featurise.val_fraction=0.1",
        ]
    )
    run_featurise(cfg, progress=False)
    # --- README: "Reading shards without this package" ---
    manifest = json.loads((out / "manifest.json").read_text())
    rows = []
    for shard in manifest["splits"]["train"]["shards"]:
        with pa.memory_map(str(out / shard["path"])) as source:
            table = pa.ipc.open_file(source).read_all()  # zero-copy
        tokens = table.column("tokens").combine_chunks()
        rows.append(tokens.flatten().to_numpy().reshape(-1, manifest["block_size"] + 1))
    # ---
    data = np.concatenate(rows)
    assert data.shape == (manifest["splits"]["train"]["sequences"], 65)
    assert data.dtype == np.dtype(manifest["dtype"]) and int(data.max()) < manifest["vocab_size"]
