"""The featurise stage on Spark: ``pages/`` → tokenizer + packed Arrow token shards + manifest.

Plan (all decisions are functions of the pages and the config, never of Spark's
parallelism, so the output bytes are the same under ``local[1]``, ``local[2]`` or a
cluster). :func:`run_featurise` runs these steps in order, each a function below:

1. :func:`split_pages`: keep ``ok`` pages; give each a split and a bucket hash from
   ``sha256("<wiki>:<page_id>")`` (:func:`pipeline.shards.tokenize.key_fractions` is the
   Python reference).
2. :func:`fit_tokenizer`: train the byte-level BPE on the driver from a deterministic
   sample of training pages (in ``(wiki, page_id)`` order, capped by
   ``featurise.tokenizer_sample_bytes``), or take the given ``tokenizer.json``.
3. :func:`plan_buckets`: estimate tokens per byte on the start of that sample and give
   each split enough buckets that one holds about ``featurise.shard_bytes`` of tokens.
4. :func:`write_shards`: range-partition by ``(split, bucket)``, sort by ``(split, bucket,
   wiki, page_id)`` and run :func:`pipeline.shards.pack.pack_partition` through
   ``mapInArrow``: each task writes attempt-named shard files and returns small stats rows.
5. :func:`commit_shards`: the driver renames the files to
   ``<split>/part-NNNNN-of-MMMMM.arrow`` in ``(bucket, piece)`` order.
6. :func:`build_manifest`: the manifest of it all; ``tokenizer.json`` and
   ``manifest.json`` are written, then ``_SUCCESS``, and the staging folder is renamed
   into place (:class:`pipeline.spark.commit.StagedOutput`).
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline import config as cfgmod
from pipeline.contracts.manifest import (
    PagesSource,
    ShardInfo,
    ShardsManifest,
    SplitInfo,
    TokenizerInfo,
)
from pipeline.contracts.pages import FINGERPRINT_FILE, PagesTable, read_pages_dir
from pipeline.fs import filesystem
from pipeline.shards import format as fmt
from pipeline.shards.pack import STATS_SCHEMA, PackSpec, pack_partition
from pipeline.shards.tokenize import (
    HEX_DIGITS,
    check_tokenizer,
    load_tokenizer,
    sample_texts,
    set_task_threads,
    train_tokenizer,
)
from pipeline.spark.commit import StagedOutput
from pipeline.spark.progress import run_with_progress
from pipeline.spark.session import build_spark_session
from pipeline.stage_config import FeaturiseConfig, PipelineConfig

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from tokenizers import Tokenizer

RATIO_SAMPLE_BYTES = 1 << 20  # text encoded on the driver to estimate tokens per byte
ARROW_BATCH_ROWS = 256  # pages per Arrow batch handed to a task (bounds task memory)
# The validation floor of issue 17: at least 2% of the tokens and 20 sequences, so that a
# validation loss means something; met by raising the split hash threshold
# (:func:`_val_threshold`). The bytes-per-token bound is above what byte-level BPEs of 4k
# to 64k tokens give on Wikipedia text (about 3.5 to 4.5 bytes per token for English; the
# manifest's ``tokenizer.tokens_per_byte`` records the actual figure).
MIN_VAL_TOKEN_FRACTION = 0.02
MIN_VAL_SEQUENCES = 20
VAL_FLOOR_MARGIN = 1.25
BYTES_PER_TOKEN_BOUND = 6.0
VAL_MAX_BYTES_FRACTION = 0.5


def _ddl(schema) -> str:
    """Spark DDL of a flat Arrow schema of strings and integers."""
    names = {"string": "string", "int64": "bigint", "int32": "int"}
    return ", ".join(f"{f.name} {names[str(f.type)]}" for f in schema)


def _partition(spec: PackSpec, batches):
    """Spark wrapper of :func:`pipeline.shards.pack.pack_partition`."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = f"{ctx.taskAttemptId()}-{ctx.attemptNumber()}" if ctx else "0-0"
    set_task_threads(ctx.cpus() if ctx else 1)  # one tokenizer thread per task core
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
        "wiki",
        "page_id",
        "title",
        "text",
        key.alias("key"),
        (part(0).cast("double") / scale).alias("split_frac"),
        part(1).alias("bucket_hash"),
        (part(2).cast("double") / scale).alias("sample_frac"),
    )
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


def val_floor_bytes(total_bytes: int, block_size: int) -> int:
    """Document bytes the validation split should hold so that, once tokenised, it has at
    least :data:`MIN_VAL_TOKEN_FRACTION` of the tokens and :data:`MIN_VAL_SEQUENCES`
    sequences (issue 17).

    The split is chosen before the tokenizer exists, so tokens are estimated from bytes:
    the fraction is asked of the bytes with a margin (:data:`VAL_FLOOR_MARGIN`, for pages
    that tokenise denser than the average), and the sequences with
    :data:`BYTES_PER_TOKEN_BOUND` bytes per token plus one spare row (a bucket drops its
    last partial row). :func:`run_featurise` checks the floor on the exact counts after
    packing.
    """
    fraction = math.ceil(MIN_VAL_TOKEN_FRACTION * VAL_FLOOR_MARGIN * total_bytes)
    rows = math.ceil((MIN_VAL_SEQUENCES + 1) * (block_size + 1) * BYTES_PER_TOKEN_BOUND)
    return max(fraction, rows)


def _val_threshold(keyed, counts, val_fraction: float, block_size: int) -> float:
    """The hash threshold below which pages go to validation: ``val_fraction``, raised
    when that leaves validation short of :func:`val_floor_bytes`.

    Raising the threshold adds the training pages with the lowest split hash first, i.e.
    in the stable ``(split_frac, key)`` order, until the floor is met; the result is the
    split hash of the first page left for training, so the choice depends only on the
    pages. Validation never takes more than half the document bytes
    (:data:`VAL_MAX_BYTES_FRACTION`): a corpus too small for the floor keeps most of
    itself for training.
    """
    from pyspark.sql import functions as F

    total = sum(b for _, b in counts.values())
    need = min(val_floor_bytes(total, block_size), int(VAL_MAX_BYTES_FRACTION * total))
    have = counts.get("val", (0, 0))[1]
    if have >= need:
        return val_fraction
    size = F.octet_length(F.col("text")) + F.coalesce(F.octet_length(F.col("title")), F.lit(0))
    rows = (
        keyed.where(F.col("split") == "train")
        .select("split_frac", "key", (size + 2).alias("b"))
        .orderBy("split_frac", "key")
        .toLocalIterator()
    )
    threshold = val_fraction
    for r in rows:
        if have + r["b"] > VAL_MAX_BYTES_FRACTION * total:
            break
        have += r["b"]
        threshold = math.nextafter(r["split_frac"], 1.0)  # r goes to validation
        if have >= need:
            break
    return threshold


def _read_tokenizer_file(uri: str) -> bytes:
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path, compression=None) as f:
            return f.read()
    except FileNotFoundError:
        raise fmt.ShardError(f"tokenizer {uri} not found") from None


def _given_tokenizer(fc: FeaturiseConfig) -> Tokenizer | None:
    """The tokenizer ``featurise.tokenizer`` names, checked (None when it names none).

    Raises:
        pipeline.shards.format.ShardError: not found, not a tokenizer, no
            ``<|endoftext|>``, or a vocabulary too big for ``featurise.dtype``.
    """
    if not fc.tokenizer:
        return None
    given = load_tokenizer(_read_tokenizer_file(fc.tokenizer), fc.tokenizer)
    check_tokenizer(given, fc.tokenizer)
    fmt.dtype_for_vocab(given.get_vocab_size(with_added_tokens=True), fc.dtype)
    return given


# --- the steps --------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitPages:
    """The ``ok`` pages, each given its split and bucket hash (:func:`split_pages`)."""

    keyed: DataFrame
    """The ok pages with ``key``, ``split_frac``, ``bucket_hash``, ``sample_frac`` and
    ``split`` columns (see :func:`_keyed`)."""
    counts: dict[str, tuple[int, int]]
    """``{split: (pages, document bytes)}``; both splits present unless there is one page."""
    forced: dict[str, str]
    """``{key: split}`` of the pages whose split was forced (see :func:`_balance`)."""
    val_threshold: float = 0.0
    """Split hash threshold used: ``featurise.val_fraction``, or higher when that left
    validation short of its floor (:func:`_val_threshold`)."""

    @property
    def ok_pages(self) -> int:
        """Number of ``ok`` pages, both splits together."""
        return sum(n for n, _ in self.counts.values())


def split_pages(
    spark: SparkSession, table: PagesTable, val_fraction: float, block_size: int = 1024
) -> SplitPages:
    """Step 1: keep the ``ok`` pages of ``table`` and give each its split.

    A page's split comes from its key's hash (``val`` below ``val_fraction``). When
    ``val_fraction`` > 0 but the pages it picks are short of the validation floor (2% of
    the tokens and 20 sequences of ``block_size``, estimated from bytes by
    :func:`val_floor_bytes`), the threshold is raised so that further pages join in
    stable hash order (:func:`_val_threshold`). Besides, at least one page goes to
    validation when there are two or more, and at least one to training.

    Raises:
        pipeline.shards.format.ShardError: the table holds no ``ok`` page with text.
    """
    ok = spark.read.parquet(*table.files).where(table.ok_rows)  # pages or curated
    keyed = _keyed(ok, val_fraction, {})
    counts = _split_counts(keyed)
    if not counts:
        raise fmt.ShardError(
            f"{table.uri} holds no ok pages (status counts: {dict(table.stats.totals.status)}); "
            "nothing to featurise. Check parse.namespaces and the input dump"
        )
    threshold = val_fraction
    if val_fraction > 0:
        threshold = _val_threshold(keyed, counts, val_fraction, block_size)
        if threshold != val_fraction:
            keyed = _keyed(ok, threshold, {})
            counts = _split_counts(keyed)
    forced = _balance(keyed, counts, threshold)
    if forced:
        keyed = _keyed(ok, threshold, forced)
        counts = _split_counts(keyed)
    return SplitPages(keyed, counts, forced, threshold)


def _first_rows(frame: DataFrame, cap_bytes: int, mean_bytes: int) -> list[Any]:
    """The first rows of ``frame`` in ``(wiki, page_id)`` order whose documents hold
    ``cap_bytes`` UTF-8 bytes (the row that crosses it included), as ``(title, text)`` rows.

    The same rows as the start of a full sort, without one: ``orderBy().limit(k)`` runs as
    Spark's ``TakeOrderedAndProject`` (each task keeps its ``k`` smallest keys, one merge),
    with ``k`` sized from ``mean_bytes`` (the mean document size) and grown fourfold until
    the rows reach the cap or the frame is exhausted.
    """
    from pyspark.sql import functions as F

    title = F.coalesce(F.octet_length("title"), F.lit(0))  # document(): no title, no "\n\n"
    size = F.octet_length("text") + F.when(title > 0, title + 2).otherwise(0)
    ordered = frame.select("wiki", "page_id", "title", "text", size.alias("b"))
    k = 2 * math.ceil(cap_bytes / max(1, mean_bytes)) + 16
    while True:
        rows = ordered.orderBy("wiki", "page_id").limit(k).collect()
        if len(rows) < k or sum(r["b"] for r in rows) >= cap_bytes:
            return rows
        k *= 4


@dataclass(frozen=True)
class FittedTokenizer:
    """The tokenizer the shards are encoded with (:func:`fit_tokenizer`)."""

    tokenizer: Tokenizer
    """The Hugging Face ``tokenizers.Tokenizer``."""
    json: str
    """Its ``tokenizer.json`` text: shipped to the tasks and written to the output."""
    eot_id: int
    """Id of ``<|endoftext|>``, appended after every document."""
    vocab_size: int
    """Vocabulary size, added tokens included."""
    dtype: str
    """Token dtype of the shards: ``uint16`` or ``uint32``."""
    trained: bool
    """True when trained here, False when given (``featurise.tokenizer``)."""
    probe: tuple[str, ...]
    """The first :data:`RATIO_SAMPLE_BYTES` of the sample, as documents, for
    :func:`plan_buckets`' estimate of tokens per byte."""


def fit_tokenizer(
    pages: SplitPages, fc: FeaturiseConfig, given: Tokenizer | None = None
) -> FittedTokenizer:
    """Step 2: train the byte-level BPE on a deterministic sample of training pages, in
    ``(wiki, page_id)`` order and capped at ``fc.tokenizer_sample_bytes``, or take
    ``given``. Either way the start of the same sample is kept as the probe.

    Raises:
        pipeline.shards.format.ShardError: the tokenizer has no ``<|endoftext|>`` or its
            vocabulary does not fit ``fc.dtype``.
    """
    train_pages, train_bytes = pages.counts["train"]
    rate = min(1.0, 1.1 * fc.tokenizer_sample_bytes / max(1, train_bytes))

    sampled = pages.keyed.where(f"split = 'train' AND sample_frac < {rate!r}")

    def sample(cap: int) -> Iterator[str]:
        rows = sampled.orderBy("wiki", "page_id").select("title", "text").toLocalIterator()
        return sample_texts(((r["title"], r["text"]) for r in rows), cap)

    # When the tokenizer is trained, the probe is recorded on the way instead of the
    # sample being read a second time.
    probe: list[str] = []

    def recording(docs: Iterable[str]) -> Iterator[str]:
        size = 0
        for doc in docs:
            if size < RATIO_SAMPLE_BYTES:
                probe.append(doc)
                size += len(doc.encode("utf-8"))
            yield doc

    if given is None:
        tok = train_tokenizer(recording(sample(fc.tokenizer_sample_bytes)), fc.vocab_size)
        eot_id = check_tokenizer(tok, "trained tokenizer")
    else:
        tok = given
        eot_id = check_tokenizer(tok, fc.tokenizer or "given tokenizer")
        rows = _first_rows(sampled, RATIO_SAMPLE_BYTES, math.ceil(train_bytes / train_pages))
        probe = list(sample_texts(((r["title"], r["text"]) for r in rows), RATIO_SAMPLE_BYTES))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    return FittedTokenizer(
        tokenizer=tok,
        json=tok.to_str(),
        eot_id=eot_id,
        vocab_size=vocab,
        dtype=fmt.dtype_for_vocab(vocab, fc.dtype),
        trained=given is None,
        probe=tuple(probe),
    )


@dataclass(frozen=True)
class BucketPlan:
    """How many buckets (one or more shard files each) every split gets (:func:`plan_buckets`)."""

    tokens_per_byte: float
    """Tokens per UTF-8 byte of document text, measured on the probe."""
    buckets: dict[str, int]
    """``{split: buckets}``; a page's bucket is its bucket hash modulo its split's count."""

    @property
    def tasks(self) -> int:
        """Spark tasks of :func:`write_shards`: one per bucket."""
        return sum(self.buckets.values())

    def bucket_column(self) -> Column:
        """The ``bucket`` of each row of :attr:`SplitPages.keyed`, as a Spark column."""
        from pyspark.sql import functions as F

        train = F.pmod("bucket_hash", F.lit(self.buckets.get("train", 1)))
        val = F.pmod("bucket_hash", F.lit(self.buckets.get("val", 1)))
        return F.when(F.col("split") == "train", train).otherwise(val).cast("long")


def plan_buckets(pages: SplitPages, tok: FittedTokenizer, shard_bytes: int) -> BucketPlan:
    """Step 3: estimate tokens per byte on the probe, then give each split enough buckets
    that one holds about ``shard_bytes`` of tokens."""
    probe = "".join(sample_texts(((None, d) for d in tok.probe), RATIO_SAMPLE_BYTES))
    tokens_per_byte = len(tok.tokenizer.encode(probe).ids) / max(1, len(probe.encode("utf-8")))
    itemsize = 2 if tok.dtype == "uint16" else 4
    buckets = {
        split: max(1, math.ceil(nbytes * tokens_per_byte * itemsize / shard_bytes))
        for split, (_, nbytes) in pages.counts.items()
    }
    return BucketPlan(tokens_per_byte, buckets)


def write_shards(
    stage: StagedOutput,
    pages: SplitPages,
    tok: FittedTokenizer,
    plan: BucketPlan,
    fc: FeaturiseConfig,
    *,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Step 4: tokenise and pack every bucket in a Spark task, in ``(wiki, page_id)``
    order; each task writes attempt-named files under ``_attempts/`` of the staging folder.

    Returns:
        The tasks' stats rows (:data:`pipeline.shards.pack.STATS_SCHEMA`), as dicts.
    """
    spark = pages.keyed.sparkSession
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
    stage.fs.create_dir(f"{stage.staging}/_attempts")
    spec = PackSpec(
        tok.json, tok.eot_id, fc.block_size, tok.dtype, fc.shard_bytes, f"{stage.uri}/_attempts"
    )
    frame = (
        pages.keyed.withColumn("bucket", plan.bucket_column())
        .repartitionByRange(plan.tasks, "split", "bucket")
        .sortWithinPartitions("split", "bucket", "wiki", "page_id")
        .select("split", "bucket", "title", "text")
        .mapInArrow(functools.partial(_partition, spec), _ddl(STATS_SCHEMA))
    )
    if progress:
        results = run_with_progress(spark.sparkContext, frame.collect, plan.tasks, "featurise")
    else:
        results = frame.collect()
    return [r.asDict() for r in results]


def commit_shards(
    stage: StagedOutput, results: list[dict[str, Any]], block_size: int
) -> dict[str, SplitInfo]:
    """Step 5: rename the tasks' files to ``<split>/part-NNNNN-of-MMMMM.arrow`` in
    ``(bucket, piece)`` order, drop the failed or speculative attempts' files, and return
    the manifest's splits."""
    row_len = block_size + 1
    splits: dict[str, SplitInfo] = {}
    for split in fmt.SPLITS:
        rows = sorted(
            (r for r in results if r["split"] == split), key=lambda r: (r["bucket"], r["piece"])
        )
        kept = [r for r in rows if r["file"]]
        if kept:
            stage.fs.create_dir(f"{stage.staging}/{split}")
        shards = []
        for i, r in enumerate(kept):
            name = f"{split}/part-{i:05d}-of-{len(kept):05d}.arrow"
            stage.fs.move(filesystem(r["file"])[1], f"{stage.staging}/{name}")
            shards.append(
                ShardInfo(
                    path=name,
                    sequences=r["sequences"],
                    tokens=r["sequences"] * row_len,
                    bytes=r["bytes"],
                    sha256=r["sha256"],
                )
            )
        splits[split] = SplitInfo(
            shards=tuple(shards),
            documents=sum(r["documents"] for r in rows),
            document_tokens=sum(r["document_tokens"] for r in rows),
            dropped_tokens=sum(r["dropped_tokens"] for r in rows),
            buckets=len({r["bucket"] for r in rows}),
        )
    stage.fs.delete_dir(f"{stage.staging}/_attempts")  # failed or speculative attempts
    return splits


def build_manifest(
    fc: FeaturiseConfig,
    table: PagesTable,
    pages: SplitPages,
    tok: FittedTokenizer,
    plan: BucketPlan,
    splits: dict[str, SplitInfo],
) -> ShardsManifest:
    """Step 6: the ``manifest.json`` of the shards: their splits, the tokenizer, the pages
    they came from, the config (without where the output went) and the code version."""
    config = {k: v for k, v in cfgmod.to_dict(fc).items() if k not in ("out", "overwrite")}
    return ShardsManifest(
        block_size=fc.block_size,
        dtype=tok.dtype,
        vocab_size=tok.vocab_size,
        eot_id=tok.eot_id,
        splits=splits,
        tokenizer=TokenizerInfo(
            path=fmt.TOKENIZER,
            sha256=hashlib.sha256(tok.json.encode("utf-8")).hexdigest(),
            trained=tok.trained,
            given=fc.tokenizer,
            sample_bytes=fc.tokenizer_sample_bytes if tok.trained else 0,
            tokens_per_byte=round(plan.tokens_per_byte, 6),
        ),
        pages=PagesSource(
            path=table.uri,
            stats_sha256=table.stats_sha256,
            ok_pages=pages.ok_pages,
            status=dict(table.stats.totals.status),
            forced_split=pages.forced,
            val_threshold=pages.val_threshold,
        ),
        config={**config, "pages": table.uri},
        code_version=pipeline.__version__,
    )


def val_floor_report(
    val_fraction: float, pages: SplitPages, splits: dict[str, SplitInfo]
) -> dict[str, Any]:
    """How the validation split meets its floor, on the exact counts after packing.

    Returns ``{"val_fraction", "val_threshold", "raised", "val_pages", "val_sequences",
    "val_token_fraction", "min_sequences", "min_token_fraction", "met"}``: the configured
    and used hash thresholds, whether the floor raised it, the validation pages,
    sequences and share of the tokens in rows, the floor (issue 17) and whether it holds.
    A split that misses it (a corpus too small, see :func:`_val_threshold`) is reported
    on stderr; the shards are still written.
    """
    val = splits.get("val")
    tokens = sum(s.tokens for s in splits.values())
    val_tokens = val.tokens if val else 0
    share = val_tokens / tokens if tokens else 0.0
    report = {
        "val_fraction": val_fraction,
        "val_threshold": pages.val_threshold,
        "raised": pages.val_threshold != val_fraction,
        "val_pages": val.documents if val else 0,
        "val_sequences": val.sequences if val else 0,
        "val_token_fraction": round(share, 6),
        "min_sequences": MIN_VAL_SEQUENCES,
        "min_token_fraction": MIN_VAL_TOKEN_FRACTION,
    }
    report["met"] = val_fraction == 0 or (
        report["val_sequences"] >= MIN_VAL_SEQUENCES and share >= MIN_VAL_TOKEN_FRACTION
    )
    if not report["met"]:
        print(
            f"featurise: validation holds {report['val_sequences']} sequences, "
            f"{share:.1%} of the tokens, below the floor of {MIN_VAL_SEQUENCES} and "
            f"{MIN_VAL_TOKEN_FRACTION:.0%}: the corpus is too small to spare more",
            file=sys.stderr,
        )
    return report


class _Phases:
    """Wall time of each phase, for the CLI's summary (never written: bytes stay stable)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Record the time since the previous lap (or the start) as phase ``name``."""
        total = time.perf_counter() - self.started
        self.seconds[name] = round(total - sum(self.seconds.values()), 3)

    def total(self) -> float:
        """Seconds since the start."""
        return round(time.perf_counter() - self.started, 3)


def run_featurise(
    cfg: PipelineConfig, *, progress: bool = True, fingerprint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Featurise ``cfg.featurise.pages`` into ``cfg.featurise.out``; return the manifest.

    Runs the steps of this module's docstring inside a :class:`StagedOutput`. Besides the
    manifest's fields the result holds ``seconds`` and ``phases``, the wall time of each
    phase: ``session`` (the checks and the Spark session), ``split`` (step 1),
    ``tokenizer`` (2), ``estimate`` (3), ``tokenise_pack_write`` (4) and ``commit`` (5, 6
    and the publish). ``fingerprint``, when given, is written as ``_fingerprint.json`` into
    the output before it is published (see :mod:`pipeline.run`).

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
    phases = _Phases()
    fc = cfg.featurise
    pages_uri = cfg.paths.featurise_pages
    inputs = (pages_uri, fc.tokenizer) if fc.tokenizer else (pages_uri,)
    staged = StagedOutput(cfg.paths.shards, "featurise", overwrite=fc.overwrite, inputs=inputs)
    table = read_pages_dir(pages_uri)
    given = _given_tokenizer(fc)
    if not table.files:
        raise fmt.ShardError(f"{pages_uri} holds no ok pages (the table is empty)")

    with staged as stage:  # entered first: an unwritable output fails before Spark starts
        spark = build_spark_session(cfg.spark)
        phases.lap("session")
        pages = split_pages(spark, table, fc.val_fraction, fc.block_size)
        phases.lap("split")
        tok = fit_tokenizer(pages, fc, given)
        phases.lap("tokenizer")
        plan = plan_buckets(pages, tok, fc.shard_bytes)
        phases.lap("estimate")
        results = write_shards(stage, pages, tok, plan, fc, progress=progress)
        phases.lap("tokenise_pack_write")
        splits = commit_shards(stage, results, fc.block_size)
        floor = val_floor_report(fc.val_fraction, pages, splits)
        manifest = build_manifest(fc, table, pages, tok, plan, splits)
        stage.write_bytes(fmt.TOKENIZER, tok.json.encode("utf-8"))
        stage.write_bytes(fmt.MANIFEST, manifest.to_json())
        if fingerprint is not None:
            stage.write_json(FINGERPRINT_FILE, fingerprint)
    phases.lap("commit")
    result = manifest.to_dict()
    result["seconds"] = phases.total()
    result["phases"] = phases.seconds  # returned, not written: the manifest's bytes stay stable
    result["val_floor"] = floor
    return result
