"""``pipeline run``: parse → curate → featurise → train → report, incremental and safe to
schedule (curate is left out with ``curate.enabled=false``).

Each stage's output carries ``_fingerprint.json``: the sha256 of its inputs (file names,
sizes and content or index checksums, or the previous stage's fingerprint), its resolved
config section and the hash of the code that makes it. A re-run skips a stage whose
output is complete (``_SUCCESS``, or for training an exported model at ``max_steps``) with
the same fingerprint, and re-runs from the first stage that changed; ``--force STAGE``
re-runs from that stage. Training resumes from its last checkpoint. A lock file in the
work dir keeps two runs off the same work dir; a lock left by a dead process is cleared.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from pipeline import codehash, outputs
from pipeline import config as cfgmod
from pipeline.contracts.pages import FINGERPRINT_FILE
from pipeline.errors import EXIT_FAILED, PipelineError
from pipeline.fs import atomic_write, file_digest, read_json_or_none
from pipeline.stage_config import PipelineConfig

STAGES = ("parse", "curate", "featurise", "train")
LOCK = ".pipeline.lock"
FINGERPRINT = FINGERPRINT_FILE  # _fingerprint.json: readers of the table skip it
# The module each stage runs; its code hash covers every project module it imports.
_ENTRY = {
    "parse": "pipeline.spark.parse_stage",
    "curate": "pipeline.spark.curate_stage",
    "featurise": "pipeline.spark.featurise_stage",
    "train": "pipeline.train.launch",
}
# Config keys that do not change a stage's output (where and how it runs).
_NOT_OUTPUT = {
    "parse": {"out", "overwrite"},
    "curate": {"out", "pages", "overwrite", "enabled"},
    "featurise": {"out", "pages", "overwrite"},
    "train": {"data", "run", "launcher", "np", "hosts", "network_interface", "compile"},
}


class RunError(PipelineError):
    """A stage of ``pipeline run`` failed, or the work dir is locked by a live run.

    ``exit_code`` is 2 when the stage refused its config or output path before any work
    (:class:`pipeline.errors.UsageError`), else 1.
    """

    def __init__(self, stage: str, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(f"stage {stage} failed: {message}")
        self.stage = stage
        self.exit_code = exit_code


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def code_hash(stage: str) -> str:
    """sha256 of the code that makes ``stage``'s output: every project module its entry
    module imports, transitively (:func:`pipeline.codehash.code_hash`)."""
    return codehash.code_hash(_ENTRY[stage])


class _HashCache:
    """Content sha256 of local files, cached by ``(path, size, mtime_ns)`` in the work dir."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = read_json_or_none(path) or {}

    def sha256(self, file: str, size: int, mtime_ns: int) -> str:
        key = f"{file}\0{size}\0{mtime_ns}"
        if key not in self.data:
            self.data[key] = file_digest(file).hexdigest()
        return self.data[key]

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(self.data, indent=1, sort_keys=True))


def input_files(cfg: PipelineConfig, cache: _HashCache) -> list[dict[str, Any]]:
    """Name, size and checksum of every dump file (and multistream index) of the parse input.

    Local files are hashed in full (cached by size and mtime); remote URIs (``hdfs://``,
    ``s3a://``) are identified by name, size and modification time only.
    """
    from pipeline.fs import filesystem
    from pipeline.wiki import sources

    out = []
    for uri, _size in sources.expand_inputs(cfg.parse.input):
        names = [uri]
        index = sources.index_for(uri)
        if index:
            names.append(index)
        for name in names:
            fs, path = filesystem(name)
            info = fs.get_file_info(path)
            entry = {"file": os.path.basename(path), "size": info.size}
            if isinstance(fs, pafs.LocalFileSystem):
                entry["sha256"] = cache.sha256(path, info.size, info.mtime_ns or 0)
            else:
                entry["mtime_ns"] = info.mtime_ns
            out.append(entry)
    return out


def _section(cfg: PipelineConfig, stage: str) -> dict[str, Any]:
    sec = cfgmod.to_dict(getattr(cfg, stage))
    return {k: v for k, v in sec.items() if k not in _NOT_OUTPUT[stage]}


def active_stages(cfg: PipelineConfig) -> tuple[str, ...]:
    """:data:`STAGES` without ``curate`` when ``curate.enabled`` is false."""
    return tuple(s for s in STAGES if s != "curate" or cfg.curate.enabled)


def fingerprints(cfg: PipelineConfig, cache: _HashCache) -> dict[str, dict[str, Any]]:
    """The fingerprint record of each active stage; each chains the previous one's sha256."""
    records: dict[str, dict[str, Any]] = {}
    upstream: Any = {"inputs": input_files(cfg, cache)}
    for stage in active_stages(cfg):
        rec: dict[str, Any] = {"stage": stage, "upstream": upstream}
        rec.update(config=_section(cfg, stage), code=code_hash(stage))
        if stage == "train":
            rec["model"] = cfgmod.to_dict(cfg.model)
        rec["sha256"] = _sha256(json.dumps(rec, sort_keys=True).encode())
        records[stage] = rec
        upstream = rec["sha256"]
    return records


def stage_dirs(cfg: PipelineConfig) -> dict[str, Path]:
    """Output folder of each stage under the resolved config."""
    return {
        "parse": Path(cfg.paths.pages),
        "curate": Path(cfg.paths.curated),
        "featurise": Path(cfg.paths.shards),
        "train": Path(cfg.paths.run),
    }


def recorded(folder: Path) -> str | None:
    """The fingerprint sha256 a stage output records, or None if it has none."""
    return (read_json_or_none(folder / FINGERPRINT) or {}).get("sha256")


def is_complete(stage: str, folder: Path, cfg: PipelineConfig) -> bool:
    """Whether a stage output is complete: ``_SUCCESS``, or an export at ``max_steps``."""
    if stage != "train":
        return (folder / "_SUCCESS").is_file()
    export = read_json_or_none(folder / "model" / "config.json") or {}
    return export.get("step") == cfg.train.max_steps


@dataclass
class RunLock:
    """An exclusive ``flock`` on ``<work_dir>/.pipeline.lock`` for the life of the run.

    The kernel drops the lock when its process dies, so a lock file left by a dead run is
    stale by construction; it is reported and taken over.
    """

    path: Path
    fd: int = -1

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 4096).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise RunError(
                "lock", f"another pipeline run holds {self.path} ({holder}); wait for it or stop it"
            ) from None
        previous = os.read(self.fd, 4096).decode(errors="replace").strip()
        if previous:
            print(f"pipeline run: cleared a stale lock left by a dead run ({previous})")
        os.ftruncate(self.fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.pwrite(self.fd, json.dumps(info).encode(), 0)
        return self

    def __exit__(self, *exc: Any) -> None:
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.path.unlink(missing_ok=True)


def plan(cfg: PipelineConfig, fps: dict[str, dict], force: str | None) -> list[str]:
    """The stages to run: from ``force`` or the first stage that is incomplete or changed."""
    dirs = stage_dirs(cfg)
    stages = active_stages(cfg)
    for i, stage in enumerate(stages):
        if stage == force:
            return list(stages[i:])
        if (
            not is_complete(stage, dirs[stage], cfg)
            or recorded(dirs[stage]) != fps[stage]["sha256"]
        ):
            return list(stages[i:])
    return []


def _write_fingerprint(folder: Path, rec: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / FINGERPRINT, json.dumps(rec, indent=2, sort_keys=True) + "\n")


def _prepare_train(folder: Path, rec: dict[str, Any], fresh: bool, data: str) -> None:
    """Keep a run folder made for the same fingerprint (training resumes from its last
    checkpoint); move a run of other inputs, or any run when ``fresh``, aside under a new
    name (nothing is deleted). Only a folder with this tool's train marker is touched.

    Raises:
        pipeline.errors.OutputError: the folder is not a run folder of this tool.
    """
    outputs.claim_run_folder(str(folder), data)
    old = recorded(folder)
    if fresh or (old is not None and old != rec["sha256"]):
        base = f"{folder.name}.superseded-{(old or 'unknown')[:12]}"
        aside, n = folder.with_name(base), 1
        while aside.exists():
            n += 1
            aside = folder.with_name(f"{base}.{n}")
        folder.rename(aside)
        why = "forced" if fresh else "train inputs changed"
        print(f"pipeline run: {why}; moved the old run to {aside}")
        outputs.claim_run_folder(str(folder), data)
    _write_fingerprint(folder, rec)


def _claim_outputs(cfg: PipelineConfig, todo: list[str], dirs: dict[str, Path]) -> None:
    """Before any stage runs: refuse an output folder of a stage to run that is not this
    tool's output of that stage (``pipeline run`` owns only what it wrote).

    Raises:
        RunError: naming the stage, with exit code 2.
    """
    stage = "report"
    try:
        for stage in todo:
            if stage == "train":
                outputs.claim_run_folder(str(dirs["train"]), str(dirs["featurise"]), create=False)
            else:
                outputs.claim_output(stage, str(dirs[stage]), overwrite=True)
        stage = "report"
        report = dirs["train"] / "report"
        if report.exists():
            outputs.claim_output("report", str(report), overwrite=True)
    except PipelineError as e:
        raise RunError(stage, str(e), e.exit_code) from e


def _timings(work: Path) -> dict[str, Any]:
    return read_json_or_none(work / "timings.json") or {}


def run_pipeline(
    cfg: PipelineConfig, *, force: str | None = None, sample_tokens: int = 80
) -> dict[str, Any]:
    """Run the stages that are not up to date, then print a sample and write the report.

    Returns ``{"ran": [...], "skipped": [...], "dirs": {...}, "summary": [lines],
    "sample": str | None, "report": path | None}``.

    Raises:
        RunError: no dump given (neither ``parse.input`` nor ``download.wiki``), the work
            dir is locked by a live run, the download failed (stage ``download``, see
            :func:`download_stage`) or a stage failed (``.stage`` names it; outputs of
            earlier stages stay committed).
    """
    if not cfg.parse.input and not cfg.download.wiki:
        raise RunError(
            "parse",
            "no dump given; pass --dump FILE (parse.input), or name a "
            "wiki to download with --wiki WIKI (download.wiki)",
        )
    work = Path(cfg.work_dir)
    dirs = stage_dirs(cfg)
    result: dict[str, Any] = {
        "ran": [],
        "skipped": [],
        "dirs": {k: str(v) for k, v in dirs.items()},
    }
    with RunLock(work / LOCK):
        if cfg.parse.input:
            if cfg.download.wiki:
                wiki = cfg.download.wiki
                print(
                    f"pipeline run: download: skipped, parse.input is given "
                    f"(download.wiki={wiki} is not fetched)",
                    flush=True,
                )
        else:
            dumps = download_stage(cfg)
            cfg = replace(cfg, parse=replace(cfg.parse, input=[str(p) for p in dumps]))
            result["downloaded"] = [str(p) for p in dumps]
        cache = _HashCache(work / ".hashes.json")
        try:
            fps = fingerprints(cfg, cache)
        except (OSError, ValueError) as e:
            raise RunError("parse", str(e)) from e
        cache.save()
        todo = plan(cfg, fps, force)
        _claim_outputs(cfg, todo, dirs)
        timings = _timings(work)
        for stage in STAGES:
            if stage not in fps:
                print(f"pipeline run: {stage}: skipped (curate.enabled=false)", flush=True)
                result["skipped"].append(stage)
                continue
            if stage not in todo:
                print(
                    f"pipeline run: {stage}: up to date ({dirs[stage]}, fingerprint "
                    f"{fps[stage]['sha256'][:12]})",
                    flush=True,
                )
                result["skipped"].append(stage)
                continue
            print(f"pipeline run: {stage}: running -> {dirs[stage]}", flush=True)
            started = time.perf_counter()
            fresh = force is not None
            counts = _run_stage(stage, cfg, fps[stage], dirs, fresh)
            timings[stage] = {"seconds": None, **counts}
            timings[stage]["seconds"] = round(time.perf_counter() - started, 3)
            result["ran"].append(stage)
            atomic_write(work / "timings.json", json.dumps(timings, indent=2, sort_keys=True))
        result["summary"] = summary_lines(result["dirs"], timings)
        result["sample"], words = _sample(dirs["train"], dirs["featurise"], cfg, sample_tokens)
        result["summary"] += [words] if words else []  # the sample's words in the training text
        result["report"] = _report(dirs["train"])
    return result


def download_stage(cfg: PipelineConfig) -> list[Path]:
    """Fetch ``cfg.download.wiki``'s dump (``pipeline download``) for a run without
    ``parse.input``; return the dump files (their indexes lie beside them).

    Files already downloaded with the published sha1 are kept, so a re-run only re-checks
    them; a ``latest`` date that moved on fetches the new dump, whose new checksums then
    re-run every stage.

    Raises:
        RunError: stage ``download``: the mirror, the date, a checksum or the disk failed.
    """
    from pipeline.download import DownloadError, download_dump

    out = cfg.paths.dumps
    print(
        f"pipeline run: download: {cfg.download.wiki} {cfg.download.date} "
        f"{cfg.download.kind} from {cfg.download.mirror} -> {out}",
        flush=True,
    )
    try:
        dumps = download_dump(replace(cfg.download, overwrite=True), out)
    except PipelineError as e:
        raise RunError("download", str(e), e.exit_code) from e
    except (DownloadError, ValueError) as e:
        raise RunError("download", str(e)) from e
    if not dumps:
        raise RunError("download", f"the mirror lists no {cfg.download.kind} dump files")
    return dumps


def _run_stage(stage: str, cfg: PipelineConfig, rec: dict, dirs: dict[str, Path], fresh: bool):
    """Run one stage; return its throughput counts for the report."""
    from pipeline.contracts.pages import PagesError
    from pipeline.shards.format import ShardError
    from pipeline.train.checkpoint import TrainError
    from pipeline.wiki.xmlpages import DumpError

    try:
        if stage == "parse":
            from pipeline.spark.parse_stage import run_parse

            pcfg = replace(cfg, parse=replace(cfg.parse, overwrite=True))
            stats = run_parse(pcfg, fingerprint=rec)
            return {
                "pages": stats["totals"]["pages"],
                "uncompressed_bytes": stats["totals"]["uncompressed_bytes"],
            }
        if stage == "curate":
            from pipeline.spark.curate_stage import run_curate

            ccfg = replace(
                cfg, curate=replace(cfg.curate, pages=str(dirs["parse"]), overwrite=True)
            )
            c = run_curate(ccfg, fingerprint=rec)
            return {"pages": c["rows"], "kept": c["status"]["ok"]}
        if stage == "featurise":
            from pipeline.spark.featurise_stage import run_featurise

            source = dirs["curate"] if cfg.curate.enabled else dirs["parse"]
            fcfg = replace(cfg, featurise=replace(cfg.featurise, pages=str(source), overwrite=True))
            m = run_featurise(fcfg, fingerprint=rec)
            return {"tokens": m["totals"]["document_tokens"], "pages": m["pages"]["ok_pages"]}
        from pipeline.train.launch import run_train

        _prepare_train(dirs["train"], rec, fresh, str(dirs["featurise"]))
        tcfg = replace(cfg, train=replace(cfg.train, data=str(dirs["featurise"])))
        summary = run_train(tcfg) or {}
        if not is_complete("train", dirs["train"], cfg):
            raise TrainError("training ended without exporting the model at max_steps")
        return {"steps": summary.get("steps"), "tokens_per_s": summary.get("tokens_per_s")}
    except PipelineError as e:
        raise RunError(stage, str(e), e.exit_code) from e
    except (DumpError, PagesError, ShardError, TrainError, ValueError, OSError) as e:
        raise RunError(stage, str(e)) from e
    except Exception as e:
        from pipeline.spark.errors import cause_of, is_spark_error

        if not is_spark_error(e):
            raise
        cause = cause_of(e)  # the task's own error (a damaged dump, a full disk), if known
        raise RunError(stage, str(cause) if cause is not None else str(e)) from (cause or e)


def summary_lines(dirs: dict[str, str], timings: dict[str, Any]) -> list[str]:
    """The one-screen summary of a finished run: pages by status, tokens per split,
    validation loss and bits per byte first -> last, tokens/s, seconds per stage.

    Args:
        dirs: ``run_pipeline``'s ``dirs`` (stage -> output folder).
        timings: ``WORK/timings.json`` (stage -> ``{"seconds", ...}``).

    Returns:
        Lines to print; a part whose input is missing (a stage never ran) is left out.
    """
    from pipeline.shards.format import ShardError, load_manifest
    from pipeline.train.metrics import summarise

    lines = []
    try:
        m = load_manifest(dirs["featurise"]).content
    except (ShardError, OSError, ValueError):
        m = None
    if m is not None:
        status = ", ".join(f"{k} {v:,}" for k, v in sorted(m.pages.status.items()) if v)
        lines.append(f"pages:    {status}")
        splits = ", ".join(
            f"{name} {sum(sh.tokens for sh in sp.shards):,} tokens in "
            f"{sum(sh.sequences for sh in sp.shards):,} sequences ({sp.documents:,} page(s))"
            for name, sp in sorted(m.splits.items())
        )
        lines.append(f"tokens:   {splits}")
    t = summarise(dirs["train"])
    if t["val_loss_start"] is not None:
        bpb = ""
        if t["val_bpb_start"] is not None and t["val_bpb_end"] is not None:
            bpb = f"; {t['val_bpb_start']:.3f} -> {t['val_bpb_end']:.3f} bits/byte"
        lines.append(
            f"val loss: {t['val_loss_start']:.3f} -> {t['val_loss_end']:.3f} nats/token{bpb} "
            f"after {t['steps']} steps"
        )
    if t["tokens_per_s"] is not None:
        mfu = f", MFU {t['mfu']:.1%}" if t["mfu"] else ""  # 0: no known peak (CPU)
        lines.append(f"speed:    {t['tokens_per_s']:,.0f} tokens/s (median step){mfu}")
    stages = [(k, timings[k].get("seconds")) for k in STAGES if isinstance(timings.get(k), dict)]
    if stages:
        lines.append("time:     " + ", ".join(f"{k} {sec:.0f} s" for k, sec in stages if sec))
    return lines


def _sample(
    run: Path, shards: Path, cfg: PipelineConfig, tokens: int
) -> tuple[str | None, str | None]:
    """The demo sample and its summary line (:func:`pipeline.train.sample_words.demo_sample`)."""
    from pipeline.train.export import ExportError
    from pipeline.train.sample_words import demo_sample

    try:
        return demo_sample(str(run / "model"), str(shards), tokens, cfg.train.seed)
    except (ExportError, ValueError) as e:
        print(f"pipeline run: no sample: {e}", file=sys.stderr)
        return None, None


def _report(run: Path) -> str | None:
    try:
        from pipeline.report import write_report
    except ImportError:  # the report arrives with its own module
        return None
    return str(write_report(run, overwrite=True))
