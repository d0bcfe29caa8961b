"""The curate stage on Spark: ``pages/`` → ``curated/`` (dedup, language ID, quality).

Every decision is a function of the pages and the config, never of Spark's parallelism,
so the output bytes are the same under ``local[1]``, ``local[2]`` or a cluster. Steps of
:func:`run_curate`:

1. Row ids: each row gets ``fidx`` (index of its part file in ``_stats.json``), ``ridx``
   (its row index in that file, ``_metadata.row_index``) and ``rid = fidx << 40 | ridx``;
   ``node = (wiki, page_id, rid)`` orders documents for the keep rule (smallest first).
2. :func:`pipeline.curate.annotate.annotate_batches` on ``ok`` pages (``mapInArrow``):
   exact hash, language, language and quality verdicts, LSH band hashes. Persisted.
3. Exact dedup among the documents that passed: per hash the smallest node is kept.
4. Near dedup among those kept copies only (exact duplicates are collapsed first, so a
   large group of identical pages costs one document): per LSH bucket every member is
   paired with the bucket's smallest node (a star: linear in the bucket size, never
   quadratic); pairs are checked by real Jaccard (:func:`verify_batches`) and grouped by
   connected components with min-label propagation (each round, every node takes the
   smallest label among itself and its neighbours, until no label changes).
5. Every input row, with ``lang``, ``lang_score``, ``dup_of``, ``curate_status`` and
   ``curate_reason``, is hash-partitioned by ``fidx`` and written by
   :func:`pipeline.curate.write.write_partition`: output part ``i`` holds input part
   ``i``'s rows in their order. The driver renames the files, writes ``_stats.json``.

Own banding in DataFrames rather than ``pyspark.ml.feature.MinHashLSH``: MLlib's
``approxSimilarityJoin`` emits every pair of a bucket (quadratic in large groups), works
on vectors (a JVM round trip per document), draws its hash coefficients from a seed with
no documented stability across versions, and gives an approximate distance; here the
signatures are fixed functions of the text (:mod:`pipeline.curate.text`) and candidate
pairs are checked by exact Jaccard.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import yaml

import pipeline
from pipeline import config as cfgmod
from pipeline.contracts.curated import CURATE_STATUSES, CuratedStats, curated_schema
from pipeline.contracts.pages import CONFIG_FILE, FINGERPRINT_FILE, STATS_FILE, read_pages_dir
from pipeline.curate.annotate import (
    ANNOTATION_SCHEMA,
    PAIR_SCHEMA,
    CurateOptions,
    annotate_batches,
    verify_batches,
)
from pipeline.curate.write import EXAMPLES_PER_RULE, WRITE_STATS_SCHEMA, write_partition
from pipeline.errors import PipelineError
from pipeline.fs import filesystem
from pipeline.spark.commit import StagedOutput
from pipeline.spark.session import build_spark_session
from pipeline.stage_config import PipelineConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

ARROW_BATCH_ROWS = 256
_NOT_OUTPUT = ("out", "pages", "overwrite", "enabled")
RID_SHIFT = 40  # rid = fidx << 40 | ridx: 2**40 rows per part file, 2**23 files


class CurateError(PipelineError):
    """The curate stage cannot finish: components not converged, rows unaccounted for."""


def _ddl(schema) -> str:
    names = {
        "string": "string",
        "int64": "bigint",
        "double": "double",
        "list<item: int64>": "array<bigint>",
    }
    return ", ".join(f"{f.name} {names[str(f.type)]}" for f in schema)


def _annotate(opts: CurateOptions, batches):
    yield from annotate_batches(batches, opts)


def _verify(shingle_words: int, threshold: float, batches):
    yield from verify_batches(batches, shingle_words, threshold)


def _write(folder: str, batches):
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = f"{ctx.taskAttemptId()}-{ctx.attemptNumber()}" if ctx else "0-0"
    yield from write_partition(batches, folder, attempt)


def _rows(spark, files: list[str]) -> DataFrame:
    """Step 1: the pages rows with ``fidx``, ``ridx``, ``rid`` and ``node``."""
    from pyspark.sql import functions as F

    names = [f.rsplit("/", 1)[-1] for f in files]
    index = F.create_map(*[x for i, n in enumerate(names) for x in (F.lit(n), F.lit(i))])
    df = spark.read.parquet(*files).select(
        "*",
        F.col("_metadata.file_name").alias("_file"),
        F.col("_metadata.row_index").alias("ridx"),
    )
    df = df.withColumn("fidx", index[F.col("_file")].cast("long")).drop("_file")
    df = df.withColumn("rid", F.shiftleft("fidx", RID_SHIFT) + F.col("ridx"))
    return df.withColumn("node", F.struct("wiki", "page_id", "rid"))


def _key(node: str):
    from pyspark.sql import functions as F

    return F.concat_ws(":", F.col(f"{node}.wiki"), F.col(f"{node}.page_id").cast("string"))


def _components(spark, edges: DataFrame, max_rounds: int) -> tuple[DataFrame, int]:
    """Connected components of an undirected edge list ``(src, dst)`` of nodes by
    min-label propagation; returns ``(node, label)`` of every endpoint and the rounds.

    Raises:
        CurateError: labels still change after ``max_rounds`` rounds.
    """
    from pyspark.sql import functions as F

    both = edges.select("src", "dst").union(
        edges.select(F.col("dst").alias("src"), F.col("src").alias("dst"))
    )
    both = both.localCheckpoint()
    labels = both.select(F.col("src").alias("node"), F.col("src").alias("label")).distinct()
    labels = labels.localCheckpoint()
    for rounds in range(1, max_rounds + 1):
        offers = both.join(labels.withColumnRenamed("node", "dst"), "dst").select(
            F.col("src").alias("node"), "label"
        )
        new = labels.union(offers).groupBy("node").agg(F.min("label").alias("label"))
        new = new.localCheckpoint()
        changed = (
            new.join(labels.withColumnRenamed("label", "old"), "node")
            .where(F.col("label") != F.col("old"))
            .count()
        )
        labels = new
        if changed == 0:
            return labels, rounds
    raise CurateError(
        f"near-duplicate components did not converge in {max_rounds} rounds; raise "
        "curate.max_component_rounds"
    )


def _decide(
    spark, rows: DataFrame, ann: DataFrame, cc, threshold_text: str, near: dict[str, int], lap
):
    """Steps 3 and 4: ``(rid, curate_status, curate_reason, dup_of, lang, lang_score)``
    of every ``ok`` page."""
    from pyspark.sql import functions as F

    keys = rows.select("rid", "node")
    passed = ann.where("pre_status IS NULL").join(keys, "rid")
    if cc.exact_dedup:
        reps = passed.groupBy("norm_hash").agg(F.min("node").alias("rep"))
        passed = passed.join(reps, "norm_hash")
    else:
        passed = passed.withColumn("rep", F.col("node"))
    passed = passed.localCheckpoint()
    lap("exact")
    label = passed.select(F.col("rid").alias("rep_rid"), F.col("rep").alias("label")).where(
        F.lit(False)
    )
    if cc.near_dedup:
        kept = passed.where(F.col("node") == F.col("rep"))
        banded = kept.select("node", F.posexplode("bands").alias("band", "h"))
        mins = banded.groupBy("band", "h").agg(F.min("node").alias("m"))
        cand = (
            banded.join(mins, ["band", "h"])
            .where(F.col("node") != F.col("m"))
            .select(F.col("node").alias("src"), F.col("m").alias("dst"))
            .distinct()
            .localCheckpoint()
        )
        near["candidate_pairs"] = cand.count()
        lap("candidates")
        if near["candidate_pairs"]:  # else no texts to read, no pairs to check
            text = rows.select("rid", "text")
            pairs = (
                cand.select(F.col("src.rid").alias("a"), F.col("dst.rid").alias("b"), "src", "dst")
                .join(text.withColumnRenamed("rid", "a").withColumnRenamed("text", "a_text"), "a")
                .join(text.withColumnRenamed("rid", "b").withColumnRenamed("text", "b_text"), "b")
                .select("a", "b", "a_text", "b_text")
                .mapInArrow(
                    functools.partial(_verify, cc.shingle_words, cc.near_dup_threshold),
                    _ddl(PAIR_SCHEMA),
                )
            )
            verified = pairs.join(
                cand.select(F.col("src.rid").alias("a"), F.col("dst.rid").alias("b"), "src", "dst"),
                ["a", "b"],
            )
            verified = verified.select("src", "dst").localCheckpoint()
            near["verified_pairs"] = verified.count()
            lap("verify")
            if near["verified_pairs"]:
                comp, near["rounds"] = _components(spark, verified, cc.max_component_rounds)
                near["components"] = comp.select("label").distinct().count()
                lap("components")
                label = comp.where(F.col("node") != F.col("label")).select(
                    F.col("node.rid").alias("rep_rid"), "label"
                )
    # the final kept copy of each exact group: its representative, or the component's
    final = passed.join(label, F.col("rep.rid") == F.col("rep_rid"), "left")
    target = F.coalesce(F.col("label"), F.col("rep"))
    status = (
        F.when(F.col("node") != F.col("rep"), F.lit("duplicate"))
        .when(F.col("label").isNotNull(), F.lit("near_duplicate"))
        .otherwise(F.lit("ok"))
    )
    reason = (
        F.when(status == "duplicate", F.concat(F.lit("duplicate: exact copy of "), _key("rep")))
        .when(
            status == "near_duplicate",
            F.concat(
                F.lit(f"near_duplicate: Jaccard >= {threshold_text} in the group of "),
                _key("label"),
            ),
        )
        .otherwise(F.col("pre_reason"))
    )
    decided = final.select(
        "rid",
        status.alias("curate_status"),
        reason.alias("curate_reason"),
        F.when(
            status != "ok",
            F.concat_ws(":", target.getField("wiki"), target.getField("page_id").cast("string")),
        ).alias("dup_of"),
        "lang",
        "lang_score",
    )
    removed = ann.where("pre_status IS NOT NULL").select(
        "rid",
        F.col("pre_status").alias("curate_status"),
        F.col("pre_reason").alias("curate_reason"),
        F.lit(None).cast("string").alias("dup_of"),
        "lang",
        "lang_score",
    )
    return decided.unionByName(removed)  # lang and lang_score ride along: no join back


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    status = dict.fromkeys(CURATE_STATUSES, 0)
    rules: dict[str, int] = {}
    languages: dict[str, dict[str, int]] = {}
    examples: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        c = json.loads(r["counts"])
        for k, v in c["status"].items():
            status[k] = status.get(k, 0) + v
        for k, v in c["rules"].items():
            rules[k] = rules.get(k, 0) + v
        for lang, kv in c["languages"].items():
            d = languages.setdefault(lang, {"kept": 0, "removed": 0})
            for k, v in kv.items():
                d[k] += v
        for rule, ex in json.loads(r["examples"]).items():
            examples.setdefault(rule, []).extend(ex)
    for rule, ex in examples.items():
        ex.sort(key=lambda e: (e["sort"], e["reason"]))
        examples[rule] = [
            {k: v for k, v in e.items() if k != "sort"} for e in ex[:EXAMPLES_PER_RULE]
        ]
    return {
        "status": status,
        "rules": dict(sorted(rules.items())),
        "languages": dict(sorted(languages.items())),
        "examples": dict(sorted(examples.items())),
    }


def run_curate(
    cfg: PipelineConfig, *, progress: bool = True, fingerprint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Curate ``cfg.paths.curate_pages`` into ``cfg.paths.curated``; return the stats.

    Returns the ``_stats.json`` object (:class:`pipeline.contracts.curated.CuratedStats`)
    plus ``seconds`` and ``phases`` (wall time per step, never written).

    Raises:
        pipeline.contracts.pages.PagesError: the input is not a complete pages folder.
        pipeline.errors.OutputError: the output overlaps the input or holds anything but
            a previous curate output (which needs ``curate.overwrite``); before any work.
        CurateError: components did not converge, or rows were lost (a bug).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    started = time.perf_counter()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        phases[name] = round(time.perf_counter() - started - sum(phases.values()), 3)

    cc = cfg.curate
    pages_uri = cfg.paths.curate_pages
    staged = StagedOutput(cfg.paths.curated, "curate", overwrite=cc.overwrite, inputs=(pages_uri,))
    table = read_pages_dir(pages_uri)
    if "curate_status" in table.ok_rows:
        raise PipelineError(f"{pages_uri} is already a curated table; give curate a pages folder")
    opts = CurateOptions.from_config(cc)
    near = {"candidate_pairs": 0, "verified_pairs": 0, "components": 0, "rounds": 0}
    with staged as stage:
        spark = build_spark_session(cfg.spark)
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS))
        lap("session")
        results: list[dict[str, Any]] = []
        if table.files:
            rows = _rows(spark, table.files)
            ok = rows.where("status = 'ok' AND text IS NOT NULL").select("rid", "wiki", "text")
            ann = ok.mapInArrow(functools.partial(_annotate, opts), _ddl(ANNOTATION_SCHEMA))
            ann = ann.persist(StorageLevel.MEMORY_AND_DISK)
            ann.count()
            lap("annotate")
            decided = _decide(spark, rows, ann, cc, f"{cc.near_dup_threshold:g}", near, lap)
            out = rows.join(decided, "rid", "left").select(
                *[c for c in curated_schema().names if c not in ("curate_status",)],
                F.coalesce(F.col("curate_status"), F.lit("skipped")).alias("curate_status"),
                "fidx",
                "ridx",
            )
            out = out.withColumn(
                "curate_reason",
                F.when(
                    F.col("curate_status") == "skipped",
                    F.concat(F.lit("skipped: status "), F.col("status")),
                ).otherwise(F.col("curate_reason")),
            )
            stage.fs.create_dir(f"{stage.staging}/_attempts")
            frame = (
                out.repartition(len(table.files), "fidx")
                .sortWithinPartitions("fidx", "ridx")
                .select(*curated_schema().names, "fidx")
                .mapInArrow(
                    functools.partial(_write, f"{stage.uri}/_attempts"), _ddl(WRITE_STATS_SCHEMA)
                )
            )
            results = [r.asDict() for r in frame.collect()]
            ann.unpersist()
            lap("write")
        results.sort(key=lambda r: r["fidx"])
        names = [f.rsplit("/", 1)[-1] for f in table.files]  # input part i -> output part i
        written = {r["fidx"]: r for r in results}
        for fidx, name in enumerate(names):
            if fidx in written:
                stage.fs.move(filesystem(written[fidx]["file"])[1], f"{stage.staging}/{name}")
            else:  # an input part without rows
                with stage.fs.open_output_stream(f"{stage.staging}/{name}") as sink:
                    pq.write_table(curated_schema().empty_table(), sink, compression="zstd")
        if table.files:
            stage.fs.delete_dir(f"{stage.staging}/_attempts")
        merged = _merge(results)
        rows_in = table.stats.totals.rows
        if sum(r["rows"] for r in results) != rows_in:
            raise CurateError(
                f"wrote {sum(r['rows'] for r in results)} rows for {rows_in} input rows "
                f"of {pages_uri}"
            )
        resolved = cfgmod.to_dict(replace(cfg, curate=replace(cc, overwrite=False)))
        stats = CuratedStats(
            rows=rows_in,
            near_dup=near,
            files=tuple(names),
            pages={"path": table.uri, "stats_sha256": table.stats_sha256},
            pages_stats=table.stats.to_dict(),
            # what decides the output only: the curate section without where it went
            config={k: v for k, v in cfgmod.to_dict(cc).items() if k not in _NOT_OUTPUT},
            code_version=pipeline.__version__,
            **merged,
        )
        stage.write_bytes(STATS_FILE, stats.to_json())
        if fingerprint is not None:
            stage.write_json(FINGERPRINT_FILE, fingerprint)
        stage.write_bytes(CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False).encode())
    lap("commit")
    result = json.loads(stats.to_json())
    result["seconds"] = round(time.perf_counter() - started, 3)
    result["phases"] = phases
    return result
