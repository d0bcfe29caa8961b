"""The featurise stage on local Spark over real parsed samples (English and German)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.contracts.pages import PagesError
from pipeline.describe import describe_pages, describe_shards
from pipeline.errors import OutputError
from pipeline.outputs import MARKER
from pipeline.shards import format as fmt
from pipeline.shards.tokenize import document, key_fractions, load_tokenizer
from pipeline.spark.featurise_stage import _first_rows, _keyed, run_featurise
from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config

ROOT = Path(__file__).resolve().parents[2]
EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
DE = "dewiki-20170701-sample.xml"
SMALL = [
    "featurise.vocab_size=2000",
    "featurise.block_size=128",
    "model.block_size=128",
    "featurise.shard_bytes=1048576",
    "featurise.val_fraction=0.1",
]


@pytest.fixture(scope="module")
def pages(spark, wiki_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Parsed pages of the English and German samples, plus one with no ok page."""
    base = tmp_path_factory.mktemp("pages")
    out = {}
    for name, sample, ns in (("en", EN, "[0]"), ("de", DE, "[0]"), ("none", EN, "[12345]")):
        overrides = [f"parse.input=[{wiki_data / sample}]", f"parse.out={base / name}"]
        cfg = load_config(overrides=[*overrides, f"parse.namespaces={ns}"])
        run_parse(cfg, progress=False)
        out[name] = base / name
    return out


def featurise(pages_dir: Path, out: Path, *overrides: str) -> dict:
    cfg = load_config(
        overrides=[*SMALL, f"featurise.pages={pages_dir}", f"featurise.out={out}", *overrides]
    )
    return run_featurise(cfg, progress=False)


def digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def en_shards(pages, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("shards") / "en"
    return out, featurise(pages["en"], out)


def test_split_expressions_match_the_python_reference(spark) -> None:
    rows = [("enwiki", i, "t", "x") for i in (1, 12, 290, 99999, 2**40)]
    df = spark.createDataFrame(rows, "wiki string, page_id long, title string, text string")
    got = _keyed(df, 0.5, {}).collect()
    for r in got:
        split_frac, bucket_hash, sample_frac = key_fractions(r["wiki"], r["page_id"])
        assert (r["split_frac"], r["bucket_hash"], r["sample_frac"]) == (
            split_frac,
            bucket_hash,
            sample_frac,
        )
        assert r["split"] == ("val" if split_frac < 0.5 else "train")


def test_probe_rows_are_the_start_of_the_sorted_pages(spark, pages) -> None:
    """The probe of a given tokenizer (top-k, no full sort) is the start of the sorted
    sample, also when the mean page size misjudges ``k`` and it has to grow."""
    frame = spark.read.parquet(str(pages["en"])).where("status = 'ok'")
    ordered = [(r["title"], r["text"]) for r in frame.orderBy("wiki", "page_id").toLocalIterator()]
    sizes = [len(document(t, x).encode("utf-8")) for t, x in ordered]
    total = sum(sizes)
    for cap in (1, 5_000, 100_000, 1 << 20, total, total + 1):
        for mean in (1, 10_000, 10**9):  # k from too big to a far too small guess
            rows = [(r["title"], r["text"]) for r in _first_rows(frame, cap, mean)]
            n = len(rows)
            assert rows == ordered[:n], (cap, mean)
            assert n == len(ordered) or sum(sizes[:n]) >= cap, (cap, mean)  # enough rows
            assert n >= 1


def test_english_shards_are_verified_and_decode_to_the_articles(pages, en_shards) -> None:
    out, manifest = en_shards
    m = fmt.load_manifest(str(out))
    assert digests(out).keys() >= {"_SUCCESS", "manifest.json", "tokenizer.json"}
    table = pq.read_table(pages["en"] / "part-00000.parquet")
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    assert m.content.pages.ok_pages == len(ok) == 106
    splits = m.content.splits
    assert splits["train"].documents + splits["val"].documents == len(ok)
    expected_val = {r["page_id"] for r in ok if key_fractions("enwiki", r["page_id"])[0] < 0.1}
    assert splits["val"].documents == len(expected_val) > 0
    assert len(m.shards["train"]) >= 2  # 1 MiB shards
    for split, shards in m.shards.items():
        for i, s in enumerate(shards):
            assert s.path == f"{split}/part-{i:05d}-of-{len(shards):05d}.arrow"
            fmt.verify_shard(m, s)
            t = fmt.open_shard(m, s)
            assert t.schema.field("tokens").type.list_size == 129
            assert s.tokens == s.sequences * 129
        info = splits[split]
        assert info.tokens + info.dropped_tokens == info.document_tokens
    assert m.dtype == "uint16" and m.vocab_size == 2000
    tok_bytes = (out / "tokenizer.json").read_bytes()
    assert hashlib.sha256(tok_bytes).hexdigest() == m.content.tokenizer.sha256
    tok = load_tokenizer(tok_bytes, "t")
    # Every train document appears, in (wiki, page_id) order inside its bucket: the first
    # row of a shard starts with the title and text of some training article.
    first = fmt.open_shard(m, m.shards["train"][0]).column("tokens").chunk(0)
    row = np.asarray(first.flatten()[:129]).tolist()
    text = tok.decode(row)
    docs = [document(r["title"], r["text"]) for r in ok if r["page_id"] not in expected_val]
    assert any(d.startswith(text) for d in docs), text[:200]
    assert "enwiki" not in text  # only article text, no keys


def test_same_bytes_with_local1_in_a_fresh_process_and_on_rerun(pages, en_shards) -> None:
    out, _ = en_shards
    before = digests(out)
    other = out.parent / "en-local1"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    cmd = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "featurise",
        *SMALL,
        "--pages",
        str(pages["en"]),
        "--out",
        str(other),
        "spark.master=local[1]",
        "spark.ui_enabled=false",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert digests(other) == before
    featurise(pages["en"], out, "featurise.overwrite=true")  # replaced: the same bytes
    assert digests(out) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_given_tokenizer_gives_the_same_shards(pages, en_shards, tmp_path) -> None:
    out, manifest = en_shards
    given = tmp_path / "tok.json"
    given.write_bytes((out / "tokenizer.json").read_bytes())
    m2 = featurise(pages["en"], tmp_path / "s2", f"featurise.tokenizer={given}")
    assert m2["tokenizer"]["trained"] is False
    assert m2["splits"] == manifest["splits"]
    # The probe (tokens per byte) is the same pages whether the sample is read whole to
    # train or only its start is fetched for a given tokenizer.
    assert m2["tokenizer"]["tokens_per_byte"] == manifest["tokenizer"]["tokens_per_byte"]


def test_a_tiny_val_fraction_still_gives_validation_its_floor(pages, tmp_path) -> None:
    # 0.001 of the sample's 106 pages hashes no page into validation; the floor (issue 17)
    # adds training pages in stable hash order until >= 2% of the tokens, >= 20 sequences.
    out = tmp_path / "tiny"
    m = featurise(pages["en"], out, "featurise.val_fraction=0.001")
    floor = m["val_floor"]
    assert floor["raised"] and floor["met"], floor
    val, train = m["splits"]["val"], m["splits"]["train"]
    assert val["sequences"] >= 20 == floor["min_sequences"]
    assert val["tokens"] / (val["tokens"] + train["tokens"]) >= 0.02
    assert val["sequences"] == floor["val_sequences"]
    # Exactly the pages of lowest split hash are in validation, well under half the corpus.
    threshold = m["pages"]["val_threshold"]
    assert threshold == floor["val_threshold"] > 0.001
    ok = [r for r in pq.read_table(pages["en"]).to_pylist() if r["status"] == "ok"]
    fracs = sorted(key_fractions("enwiki", r["page_id"])[0] for r in ok)
    assert val["documents"] == sum(f < threshold for f in fracs) < len(ok) // 4
    assert m["pages"]["forced_split"] == {}
    assert fmt.load_manifest(str(out)).content.pages.val_threshold == threshold
    # The same floor again in a second output: the choice depends only on the pages.
    again = featurise(pages["en"], tmp_path / "again", "featurise.val_fraction=0.001")
    assert again["splits"] == m["splits"] and again["pages"] == m["pages"]


def test_german_sample_and_inspect(pages, tmp_path) -> None:
    out = tmp_path / "de"
    m = featurise(pages["de"], out, "featurise.vocab_size=1000")
    assert m["pages"]["ok_pages"] == 20
    assert m["totals"]["documents"] == 20 and m["splits"]["val"]["documents"] >= 1
    text = describe_shards(str(out))
    assert "vocab 1000" in text and "first row of train/part-00000-of-" in text
    assert "dewiki" not in text.split("decoded")[1]
    assert "ok 20" in describe_pages(str(pages["de"]))


def test_bad_inputs_are_refused_before_anything_is_written(pages, en_shards, tmp_path) -> None:
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "_stats.json").write_text("{}")
    with pytest.raises(PagesError, match="no _SUCCESS"):
        featurise(incomplete, tmp_path / "a")
    with pytest.raises(fmt.ShardError, match="holds no ok pages"):
        featurise(pages["none"], tmp_path / "b")
    with pytest.raises(OutputError, match="lies inside the input"):
        featurise(pages["en"], pages["en"] / "shards")
    no_eot = tmp_path / "noeot.json"
    tok = json.loads((en_shards[0] / "tokenizer.json").read_text())
    tok["added_tokens"] = []
    tok["model"]["vocab"].pop("<|endoftext|>")
    no_eot.write_text(json.dumps(tok))
    with pytest.raises(fmt.ShardError, match="has no <\\|endoftext\\|> token"):
        featurise(pages["en"], tmp_path / "c", f"featurise.tokenizer={no_eot}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["incomplete", "noeot.json"]


def test_existing_output_needs_overwrite_and_keeps_foreign_files(pages, tmp_path) -> None:
    out = tmp_path / "shards"
    featurise(pages["de"], out, "featurise.vocab_size=1000")
    (out / "NOTES.md").write_text("my notes on these shards")
    before = digests(out)
    with pytest.raises(OutputError, match="holds a previous featurise output; pass --overwrite"):
        featurise(pages["en"], out)
    assert digests(out) == before  # the old output is untouched
    m = featurise(pages["en"], out, "featurise.overwrite=true")
    assert m["pages"]["ok_pages"] == 106
    assert (out / "NOTES.md").read_text() == "my notes on these shards"
    listed = set(json.loads((out / MARKER).read_text())["files"])
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == listed | {"NOTES.md"}
    assert fmt.load_manifest(str(out)).content.pages.ok_pages == 106
