"""The parse stage on Spark: plan tasks on the driver, run them on executors, commit.

The cleaning and reading live in :mod:`pipeline.wiki`; this module only plans, ships
:func:`pipeline.wiki.pages.run_task` to executors (one task per Spark partition), shows
progress, and commits ``pages/`` with ``_stats.json``, ``_config.yaml`` and ``_SUCCESS``.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

import yaml

import pipeline
from pipeline import config as cfgmod
from pipeline.contracts.pages import (
    CONFIG_FILE,
    FINGERPRINT_FILE,
    STATS_FILE,
    STATUSES,
    TOP_TEMPLATES,
    Damage,
    InputStats,
    PagesStats,
    Totals,
)
from pipeline.outputs import check_not_input
from pipeline.spark.commit import StagedOutput
from pipeline.spark.errors import is_spark_error, spark_text, worker_exception
from pipeline.spark.progress import run_with_progress
from pipeline.spark.session import build_spark_session
from pipeline.stage_config import PipelineConfig
from pipeline.wiki import docsources, pages, sources
from pipeline.wiki.xmlpages import DumpError


def _partition(opts: pages.ParseOptions, staging: str, tasks):
    """Spark wrapper of :func:`pipeline.wiki.pages.run_task` for one partition."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    attempt = f"{ctx.taskAttemptId()}-{ctx.attemptNumber()}" if ctx else "0-0"
    for task in tasks:
        run = docsources.run_task if task["kind"] in docsources.KINDS else pages.run_task
        yield _plain(run(task, opts, staging, attempt))


def _plain(stats: pages.TaskStats) -> dict[str, Any]:
    out = asdict(stats)
    out["status"] = dict(stats.status)
    out["namespaces"] = {str(k): v for k, v in stats.namespaces.items()}
    for key in _TEMPLATES:
        out[key] = dict(getattr(stats, key, None) or {})
    return out


def _dump_error_from(exc: Exception) -> DumpError | None:
    """The executor's DumpError (damaged input, with file and position) inside Spark's
    wrapped exception (:func:`pipeline.spark.errors.worker_exception`), or None."""
    found = worker_exception(spark_text(exc)) if is_spark_error(exc) else None
    if found is None or found[0].rsplit(".", 1)[-1] != "DumpError":
        return None
    err = DumpError("", "")
    err.args = (found[1],)
    return err


_COUNTS = ("pages", "rows", "bytes_read", "uncompressed_bytes")
_TEMPLATES = ("templates_dropped", "templates_rendered")  # job totals only, top TOP_TEMPLATES


def _top(counts: Counter) -> dict[str, int]:
    """The :data:`TOP_TEMPLATES` most frequent names, most first (ties by name)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:TOP_TEMPLATES])


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(_COUNTS, 0), "status": Counter(), "namespaces": Counter()}


def _add(acc: dict[str, Any], row: dict[str, Any]) -> None:
    for key in _COUNTS:
        acc[key] += row[key]
    acc["status"].update(row["status"])
    acc["namespaces"].update(row["namespaces"])


def _summarise(inputs, results, **rest: Any) -> PagesStats:
    """The job's ``_stats.json`` from the tasks' stats rows (summed per input file)."""
    per_input = {
        uri: {"file": uri, "size": size, "tasks": 0, "damaged": None, **_zero()}
        for uri, size in inputs
    }
    for r in results:
        d = per_input[r["source"]]
        d["tasks"] += 1
        _add(d, r)
        if r["damaged"]:
            d["damaged"] = Damage(**r["damaged"])
    totals = _zero()
    for d in per_input.values():
        _add(totals, d)
    templates: dict[str, Counter[str]] = {key: Counter() for key in _TEMPLATES}
    for r in results:
        for key in _TEMPLATES:
            templates[key].update(r.get(key) or {})
    return PagesStats(
        inputs=tuple(
            InputStats(**{**d, "status": dict(d["status"]), "namespaces": dict(d["namespaces"])})
            for d in per_input.values()
        ),
        totals=Totals(
            **{
                **totals,
                "status": {s: totals["status"].get(s, 0) for s in STATUSES},
                "namespaces": dict(sorted(totals["namespaces"].items(), key=lambda kv: int(kv[0]))),
                **{key: _top(templates[key]) for key in _TEMPLATES},
            }
        ),
        **rest,
    )


def run_parse(
    cfg: PipelineConfig, *, progress: bool = True, fingerprint: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Parse ``cfg.parse.input`` into ``cfg.parse.out`` (default ``<work_dir>/pages``).

    Returns the stats written to ``_stats.json`` (:class:`pipeline.contracts.pages.PagesStats`
    as its JSON object) plus ``seconds``. ``fingerprint``, when given, is written as
    ``_fingerprint.json`` into the output before it is published (see :mod:`pipeline.run`).

    Raises:
        DumpError: missing input, unreadable or mismatched index, a 7z dump, or damaged
            input with ``parse.on_damaged=fail`` — before anything is published.
        pipeline.errors.OutputError: the output is, holds or lies inside an input, or
            holds anything but a previous parse output (which needs ``parse.overwrite``);
            before any work (:mod:`pipeline.outputs`).
    """
    started = time.perf_counter()
    out = cfg.paths.pages
    check_not_input("parse", out, cfg.parse.input)  # before listing: an input may be empty
    files = sources.expand_inputs(cfg.parse.input)
    inputs = [*cfg.parse.input, *(uri for uri, _ in files)]
    inputs += [ix for ix in (sources.index_for(uri) for uri, _ in files) if ix]
    staged = StagedOutput(out, "parse", overwrite=cfg.parse.overwrite, inputs=tuple(inputs))
    tasks = sources.plan_tasks(
        files,
        cfg.parse.split_bytes,
        text_field=cfg.parse.text_field,
        id_field=cfg.parse.id_field,
    )
    opts = pages.ParseOptions(
        namespaces=tuple(cfg.parse.namespaces),
        max_wikitext_bytes=cfg.parse.max_wikitext_bytes,
        parse_timeout_s=cfg.parse.parse_timeout_s,
        page_memory_bytes=cfg.parse.page_memory_bytes,
        on_damaged=cfg.parse.on_damaged,
    )
    with staged as stage:  # entered first: an unwritable output fails before Spark starts
        spark = build_spark_session(cfg.spark)
        sc = spark.sparkContext
        fn = functools.partial(_partition, opts, stage.uri)
        rdd = sc.parallelize(tasks, len(tasks)).mapPartitions(fn)
        try:
            if progress:
                results = run_with_progress(sc, rdd.collect, len(tasks), "parse")
            else:
                results = rdd.collect()
        except Exception as e:
            err = _dump_error_from(e)
            if err is None:
                raise
            raise err from None
        results.sort(key=lambda r: r["task"])
        names = []
        for r in results:
            name = f"part-{r['task']:05d}.parquet"
            stage.rename(r["file"].rsplit("/", 1)[-1], name)
            names.append(name)
        for leftover in set(stage.listdir()) - set(names):
            stage.delete(leftover)  # files of failed or speculative attempts
        # Recorded with overwrite off: how the output was replaced is not what it holds.
        resolved = cfgmod.to_dict(replace(cfg, parse=replace(cfg.parse, overwrite=False)))
        stats = _summarise(
            files,
            results,
            tasks=len(tasks),
            files=tuple(names),
            config=resolved,
            code_version=pipeline.__version__,
        )
        stage.write_bytes(STATS_FILE, stats.to_json())
        if fingerprint is not None:
            stage.write_json(FINGERPRINT_FILE, fingerprint)
        stage.write_bytes(CONFIG_FILE, yaml.safe_dump(resolved, sort_keys=False).encode())
    # Wall time is returned, not written: _stats.json keeps the same bytes on a re-run.
    result = stats.to_dict()
    result["seconds"] = round(time.perf_counter() - started, 3)
    return result
