"""The featurise stage on Spark: ``pages/`` → tokenizer + packed Arrow token shards + manifest.

Plan (all decisions are functions of the pages and the config, never of Spark's
parallelism, so the output bytes are the same under ``local[1]``, ``local[2]`` or a
cluster):

1. Keep ``ok`` pages; give each a split and a bucket from ``sha256("<wiki>:<page_id>")``
   (:func:`pipeline.shards.tokenize.key_fractions` is the Python reference).
2. Train the byte-level BPE on the driver from a deterministic sample of training pages
   (in ``(wiki, page_id)`` order, capped by ``featurise.tokenizer_sample_bytes``), or load
   the given ``tokenizer.json``.
3. Range-partition by ``(split, bucket)``, sort by ``(split, bucket, wiki, page_id)`` and
   run :func:`pipeline.shards.pack.pack_partition` through ``mapInArrow``: each task
   writes attempt-named shard files and returns small stats rows.
4. The driver renames the files to ``<split>/part-NNNNN-of-MMMMM.arrow`` in
   ``(bucket, piece)`` order, writes ``tokenizer.json`` and ``manifest.json``, then
   ``_SUCCESS``, and renames the staging folder into place.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from typing import Any

import pipeline
from pipeline import config as cfgmod
from pipeline.contracts.manifest import (
    PagesSource,
    ShardInfo,
    ShardsManifest,
    SplitInfo,
    TokenizerInfo,
)
from pipeline.contracts.pages import FINGERPRINT_FILE, read_pages_dir
from pipeline.fs import filesystem
from pipeline.shards import format as fmt
from pipeline.shards.pack import STATS_SCHEMA, PackSpec, pack_partition
from pipeline.shards.tokenize import (
    HEX_DIGITS,
    check_tokenizer,
    load_tokenizer,
    sample_texts,
    train_tokenizer,
)
from pipeline.spark.commit import StagedOutput
from pipeline.spark.progress import run_with_progress
from pipeline.spark.session import build_spark_session
from pipeline.stage_config import PipelineConfig

RATIO_SAMPLE_BYTES = 1 << 20  # text encoded on the driver to estimate tokens per byte
ARROW_BATCH_ROWS = 256  # pages per Arrow batch handed to a task (bounds task memory)


def _ddl(schema) -> str:
    """Spark DDL of a flat Arrow schema of strings and integers."""
    names = {"string": "string", "int64": "bigint", "int32": "int"}
    return ", ".join(f"{f.name} {names[str(f.type)]}" for f in schema)


def _partition(spec: PackSpec, batches):
    """Spark wrapper of :func:`pipeline.shards.pack.pack_partition`."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = f"{ctx.taskAttemptId()}-{ctx.attemptNumber()}" if ctx else "0-0"
    yield from pack_partition(batches, spec, attempt)


def _keyed(df, val_fraction: float, forced: dict[str, str]):
    """Add ``key``, ``split_frac``, ``bucket_hash``, ``sample_frac`` and ``split`` columns."""
    from pyspark.sql import functions as F

    key = F.concat_ws(":", F.col("wiki"), F.col("page_id").cast("string"))
    digest = F.sha2(key, 256)

    def part(i: int):
        hexs = F.substring(digest, i * HEX_DIGITS + 1, HEX_DIGITS)
        return F.conv(hexs, 16, 10).cast("long")

    scale = float(16**HEX_DIGITS)
    df = df.select(
        "wiki", "page_id", "title", "text",
        key.alias("key"),
        (part(0).cast("double") / scale).alias("split_frac"),
        part(1).alias("bucket_hash"),
        (part(2).cast("double") / scale).alias("sample_frac"),
    )  # fmt: skip
    split = F.when(F.col("split_frac") < val_fraction, "val").otherwise("train")
    for k, s in sorted(forced.items()):
        split = F.when(F.col("key") == k, s).otherwise(split)
    return df.withColumn("split", split)


def _split_counts(df) -> dict[str, tuple[int, int]]:
    """``{split: (pages, document bytes)}`` of a keyed frame."""
    from pyspark.sql import functions as F

    size = F.octet_length(F.col("text")) + F.coalesce(F.octet_length(F.col("title")), F.lit(0))
    rows = df.groupBy("split").agg(F.count("*").alias("n"), F.sum(size + 2).alias("b")).collect()
    return {r["split"]: (int(r["n"]), int(r["b"])) for r in rows}


def _balance(df, counts, val_fraction: float) -> dict[str, str]:
    """Pages whose split is forced: one validation page when there are >= 2 pages but none
    hashed below ``val_fraction``, and one training page when none is left for training."""
    n = sum(c[0] for c in counts.values())
    forced: dict[str, str] = {}
    if val_fraction > 0 and n >= 2 and "val" not in counts:
        forced[df.orderBy("split_frac", "key").first()["key"]] = "val"
    if "train" not in counts:
        if n == 1:
            forced[df.first()["key"]] = "train"
        else:
            forced[df.orderBy(df["split_frac"].desc(), "key").first()["key"]] = "train"
    return forced


def _read_tokenizer_file(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path, compression=None) as f:
            return f.read()
    except FileNotFoundError:
        raise fmt.ShardError(f"tokenizer {uri} not found") from None


def run_featurise(
    cfg: PipelineConfig, *, progress: bool = True, fingerprint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Featurise ``cfg.featurise.pages`` into ``cfg.featurise.out``; return the manifest.

    ``fingerprint``, when given, is written as ``_fingerprint.json`` into the output before
    it is published (see :mod:`pipeline.run`).

    Raises:
        pipeline.contracts.pages.PagesError: the pages folder is incomplete, of the old
            layout or of another schema.
        pipeline.shards.format.ShardError: no ``ok`` pages, a given tokenizer without
            ``<|endoftext|>`` or too big for the dtype.
        pipeline.errors.OutputError: the output overlaps the pages folder or the given
            tokenizer, or holds anything but a previous featurise output (which needs
            ``featurise.overwrite``); before any work (:mod:`pipeline.outputs`).
        All before anything is published; a failure leaves the old output untouched.
    """
    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 3)

    fc = cfg.featurise
    pages_uri = cfg.paths.featurise_pages
    out = cfg.paths.shards
    inputs = (pages_uri, fc.tokenizer) if fc.tokenizer else (pages_uri,)
    staged = StagedOutput(out, "featurise", overwrite=fc.overwrite, inputs=inputs)
    table = read_pages_dir(pages_uri)
    files, status = table.files, dict(table.stats.totals.status)
    given = None
    if fc.tokenizer:
        given = load_tokenizer(_read_tokenizer_file(fc.tokenizer), fc.tokenizer)
        eot_id = check_tokenizer(given, fc.tokenizer)
        fmt.dtype_for_vocab(given.get_vocab_size(with_added_tokens=True), fc.dtype)
    if not files:
        raise fmt.ShardError(f"{pages_uri} holds no ok pages (the table is empty)")

    spark = build_spark_session(cfg.spark)
    sc = spark.sparkContext
    lap("session")
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    ok = spark.read.parquet(*files).where("status = 'ok' AND text IS NOT NULL")
    keyed = _keyed(ok, fc.val_fraction, {})
    counts = _split_counts(keyed)
    if not counts:
        raise fmt.ShardError(
            f"{pages_uri} holds no ok pages (status counts: {status}); nothing to featurise. "
            "Check parse.namespaces and the input dump"
        )
    forced = _balance(keyed, counts, fc.val_fraction)
    if forced:
        keyed = _keyed(ok, fc.val_fraction, forced)
        counts = _split_counts(keyed)
    lap("split")

    # Tokenizer: trained on a deterministic sample of training pages, in (wiki, page_id)
    # order, or the given one. The same sample's start estimates tokens per byte.
    train_bytes = counts["train"][1]
    rate = min(1.0, 1.1 * fc.tokenizer_sample_bytes / max(1, train_bytes))

    def sample(cap: int):
        rows = (
            keyed.where(f"split = 'train' AND sample_frac < {rate!r}")
            .orderBy("wiki", "page_id")
            .select("title", "text")
            .toLocalIterator()
        )
        return sample_texts(((r["title"], r["text"]) for r in rows), cap)

    # The first RATIO_SAMPLE_BYTES of the same sample estimate tokens per byte; when the
    # tokenizer is trained, they are recorded on the way instead of read a second time.
    probe_docs: list[str] = []

    def recording(docs):
        size = 0
        for doc in docs:
            if size < RATIO_SAMPLE_BYTES:
                probe_docs.append(doc)
                size += len(doc.encode("utf-8"))
            yield doc

    if given is None:
        tok = train_tokenizer(recording(sample(fc.tokenizer_sample_bytes)), fc.vocab_size)
        eot_id = check_tokenizer(tok, "trained tokenizer")
    else:
        tok = given
        probe_docs = list(sample(RATIO_SAMPLE_BYTES))
    tok_json = tok.to_str()
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dtype = fmt.dtype_for_vocab(vocab, fc.dtype)
    lap("tokenizer")
    probe = "".join(sample_texts(((None, d) for d in probe_docs), RATIO_SAMPLE_BYTES))
    tokens_per_byte = len(tok.encode(probe).ids) / max(1, len(probe.encode("utf-8")))
    lap("estimate")

    itemsize = 2 if dtype == "uint16" else 4
    buckets = {
        split: max(1, math.ceil(nbytes * tokens_per_byte * itemsize / fc.shard_bytes))
        for split, (_, nbytes) in counts.items()
    }
    from pyspark.sql import functions as F

    bucket = F.when(
        F.col("split") == "train", F.pmod("bucket_hash", F.lit(buckets.get("train", 1)))
    )
    bucket = bucket.otherwise(F.pmod("bucket_hash", F.lit(buckets.get("val", 1))))
    n_tasks = sum(buckets.values())
    with staged as stage:
        tmp = f"{stage.uri}/_attempts"
        stage.fs.create_dir(f"{stage.staging}/_attempts")
        spec = PackSpec(tok_json, eot_id, fc.block_size, dtype, fc.shard_bytes, tmp)
        frame = (
            keyed.withColumn("bucket", bucket.cast("long"))
            .repartitionByRange(n_tasks, "split", "bucket")
            .sortWithinPartitions("split", "bucket", "wiki", "page_id")
            .select("split", "bucket", "title", "text")
            .mapInArrow(functools.partial(_partition, spec), _ddl(STATS_SCHEMA))
        )
        if progress:
            results = run_with_progress(sc, frame.collect, n_tasks, "featurise")
        else:
            results = frame.collect()
        lap("tokenise_pack_write")
        splits = _commit(stage, [r.asDict() for r in results], spec)
        config = {k: v for k, v in cfgmod.to_dict(fc).items() if k not in ("out", "overwrite")}
        manifest = ShardsManifest(
            block_size=fc.block_size,
            dtype=dtype,
            vocab_size=vocab,
            eot_id=eot_id,
            splits=splits,
            tokenizer=TokenizerInfo(
                path=fmt.TOKENIZER,
                sha256=hashlib.sha256(tok_json.encode("utf-8")).hexdigest(),
                trained=given is None,
                given=fc.tokenizer,
                sample_bytes=fc.tokenizer_sample_bytes if given is None else 0,
                tokens_per_byte=round(tokens_per_byte, 6),
            ),
            pages=PagesSource(
                path=pages_uri,
                stats_sha256=table.stats_sha256,
                ok_pages=sum(c[0] for c in counts.values()),
                status=status,
                forced_split=forced,
            ),
            config={**config, "pages": pages_uri},
            code_version=pipeline.__version__,
        )
        stage.write_bytes(fmt.TOKENIZER, tok_json.encode("utf-8"))
        stage.write_bytes(fmt.MANIFEST, manifest.to_json())
        if fingerprint is not None:
            stage.write_json(FINGERPRINT_FILE, fingerprint)
    lap("commit")
    result = manifest.to_dict()
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["phases"] = phases  # returned, not written: the manifest's bytes stay stable
    return result


def _commit(stage: StagedOutput, results: list[dict], spec: PackSpec) -> dict[str, SplitInfo]:
    """Rename the tasks' files into place and return the manifest's splits."""
    row_len = spec.block_size + 1
    splits: dict[str, SplitInfo] = {}
    for split in fmt.SPLITS:
        rows = sorted((r for r in results if r["split"] == split),
                      key=lambda r: (r["bucket"], r["piece"]))  # fmt: skip
        kept = [r for r in rows if r["file"]]
        if kept:
            stage.fs.create_dir(f"{stage.staging}/{split}")
        shards = []
        for i, r in enumerate(kept):
            name = f"{split}/part-{i:05d}-of-{len(kept):05d}.arrow"
            stage.fs.move(filesystem(r["file"])[1], f"{stage.staging}/{name}")
            shards.append(ShardInfo(path=name, sequences=r["sequences"],
                                    tokens=r["sequences"] * row_len, bytes=r["bytes"],
                                    sha256=r["sha256"]))  # fmt: skip
        splits[split] = SplitInfo(
            shards=tuple(shards),
            documents=sum(r["documents"] for r in rows),
            document_tokens=sum(r["document_tokens"] for r in rows),
            dropped_tokens=sum(r["dropped_tokens"] for r in rows),
            buckets=len({r["bucket"] for r in rows}),
        )
    stage.fs.delete_dir(f"{stage.staging}/_attempts")  # failed or speculative attempts
    return splits
