"""The project-side half of the scheduler DAG: run with the project's ``.venv`` Python.

``dags/spark_pipeline.py`` (which runs inside Airflow, without this project installed) calls
this script for the steps that need the ``pipeline`` package:

``prepare CONFIG.yaml --work DIR --out-config FILE [--dump PATH ... | --wiki WIKI --date D
[--kind KIND] [--mirror URL]] [--pages URI] [--curated URI] [--shards URI] [--run DIR]
[--set key=value ...]``
    Resolves the config (defaults < CONFIG.yaml < ``--set`` < the paths given), fetches the
    dump as ``pipeline run`` does (:func:`pipeline.run.download_stage`: files with the
    published sha1 are kept, so a re-run only re-checks them) unless ``--dump`` names it,
    and writes the resolved config, dump files in ``parse.input``, to FILE. Every later
    step reads only FILE, so all tasks of a DAG run see one config.

``check STAGE FILE``
    Exit 0 when STAGE (``parse``, ``curate``, ``featurise``, ``train``) must run, 99
    (Airflow's ``skip_on_exit_code``) when it is off (``curate.enabled=false``) or its output
    is up to date: complete (``_SUCCESS``; for training an export at ``train.max_steps``) and
    made from the same fingerprint as ``pipeline run`` computes
    (:func:`pipeline.run.fingerprints`: inputs' sha256, config section, code). A parse,
    curate or featurise output counts when ``record`` noted it (fingerprint and the sha256 of
    its ``_pipeline_output.json``, so a replaced output is not mistaken for it) or when it
    holds the same ``_fingerprint.json`` (made by ``pipeline run``). For ``train`` a run of
    other inputs is moved aside to ``NAME.superseded-…`` and the fingerprint is written into
    the run folder, as ``pipeline run`` does (:func:`pipeline.run._prepare_train`); an
    unfinished run of the same inputs is kept and training resumes from its checkpoint.

``record STAGE FILE``
    After STAGE's job succeeded: note its fingerprint in ``<work_dir>/.scheduler/
    fingerprints.json`` (outside the published output, whose marker lists its own files).

``path STAGE FILE``
    Print STAGE's output folder (``pages``, ``curated``, ``shards``, ``run``) under FILE.

Exit codes: 0, 99 (``check``: up to date), 1 a stage failed, 2 bad usage or config; a
failure is one line on stderr, as the ``pipeline`` command prints it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

UP_TO_DATE = 99
"""Exit status of ``check`` for an up-to-date stage; the DAG's ``skip_on_exit_code``."""
STAGES = ("parse", "curate", "featurise", "train")
RECORDS = Path(".scheduler") / "fingerprints.json"
"""Under ``work_dir``: ``{stage: {output, sha256, marker_sha256}}`` noted by ``record``."""


def _output(cfg: Any, stage: str) -> str:
    return {
        "parse": cfg.paths.pages,
        "curate": cfg.paths.curated,
        "featurise": cfg.paths.shards,
        "train": cfg.paths.run,
    }[stage]


def _absolute(path: str) -> str:
    """A local path made absolute (tasks run from other folders); URIs as they are."""
    return path if "://" in path else os.path.abspath(path)


def _read(fs: Any, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            return bytes(f.read())
    except (FileNotFoundError, OSError):
        return None


def _marker_sha256(out: str) -> str | None:
    """sha256 of the output's ``_pipeline_output.json`` (it names the writing process and
    time, so a re-published output has another), or None without one."""
    from pipeline.fs import filesystem

    fs, path = filesystem(out)
    data = _read(fs, f"{path.rstrip('/')}/_pipeline_output.json")
    return None if data is None else hashlib.sha256(data).hexdigest()


def _complete_table(out: str) -> tuple[bool, str | None]:
    """Whether a parse/featurise output is published (``_SUCCESS``) and the fingerprint
    sha256 its ``_fingerprint.json`` records (None when it has none)."""
    import pyarrow.fs as pafs

    from pipeline.fs import filesystem

    fs, path = filesystem(out)
    path = path.rstrip("/")
    done = fs.get_file_info(f"{path}/_SUCCESS").type == pafs.FileType.File
    data = _read(fs, f"{path}/_fingerprint.json")
    recorded = json.loads(data).get("sha256") if data else None
    return done, recorded


def _fingerprints(cfg: Any) -> dict[str, dict[str, Any]]:
    from pipeline.run import _HashCache, fingerprints

    cache = _HashCache(Path(cfg.work_dir) / ".hashes.json")
    fps = fingerprints(cfg, cache)
    cache.save()
    return fps


def _records(cfg: Any) -> tuple[Path, dict[str, Any]]:
    from pipeline.fs import read_json_or_none

    path = Path(cfg.work_dir) / RECORDS
    return path, read_json_or_none(path) or {}


def check(stage: str, config: str) -> int:
    """Exit status: 0 when ``stage`` must run (a train run folder is prepared), 99 when
    its output is up to date. Raises what :func:`pipeline.run.fingerprints` raises
    (``OSError``, ``ValueError``: unreadable inputs) and :class:`pipeline.errors.OutputError`
    (a run folder that is not this tool's)."""
    from pipeline import run
    from pipeline.stage_config import load_config

    cfg = load_config(config)
    out = _output(cfg, stage)
    if stage == "curate" and not cfg.curate.enabled:
        print(f"{stage}: skipped (curate.enabled=false; featurise reads {cfg.paths.pages})")
        return UP_TO_DATE
    fp = _fingerprints(cfg)[stage]
    if stage == "train":
        folder = Path(out)
        if run.is_complete("train", folder, cfg) and run.recorded(folder) == fp["sha256"]:
            return _up_to_date(stage, out, fp)
        run._prepare_train(folder, fp, False, cfg.paths.train_data)
        print(f"{stage}: to run -> {out} (fingerprint {fp['sha256'][:12]})")
        return 0
    done, recorded = _complete_table(out)
    noted = _records(cfg)[1].get(stage) or {}
    same = recorded == fp["sha256"] or (
        noted.get("output") == out
        and noted.get("sha256") == fp["sha256"]
        and noted.get("marker_sha256") == _marker_sha256(out)
    )
    if done and same:
        return _up_to_date(stage, out, fp)
    # What the job is about to make from: record notes this, not a later recomputation
    # (the code or inputs may change while the job runs).
    path, records = _records(cfg)
    records[f"{stage}.pending"] = {"output": out, "sha256": fp["sha256"]}
    _save(path, records)
    print(f"{stage}: to run -> {out} (fingerprint {fp['sha256'][:12]})")
    return 0


def _save(path: Path, records: dict[str, Any]) -> None:
    from pipeline.fs import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(records, indent=2, sort_keys=True) + "\n")


def _up_to_date(stage: str, out: str, fp: dict[str, Any]) -> int:
    print(f"{stage}: up to date ({out}, fingerprint {fp['sha256'][:12]})")
    return UP_TO_DATE


def record(stage: str, config: str) -> int:
    """Note the fingerprint ``check`` computed for ``stage``'s just-published output (parse,
    curate, featurise), with the sha256 of its marker.

    Raises:
        pipeline.errors.PipelineError: the output is not complete, or no check ran for it.
    """
    from pipeline.errors import PipelineError
    from pipeline.stage_config import load_config

    cfg = load_config(config)
    out = _output(cfg, stage)
    marker = _marker_sha256(out)
    path, records = _records(cfg)
    pending = records.pop(f"{stage}.pending", None)
    if marker is None or not _complete_table(out)[0]:
        raise PipelineError(f"{out} holds no complete {stage} output; re-run the {stage} task")
    if not pending or pending.get("output") != out:
        raise PipelineError(f"no {stage} check ran for {out}; re-run the DAG from {stage}.check")
    records[stage] = {"output": out, "sha256": pending["sha256"], "marker_sha256": marker}
    _save(path, records)
    print(f"{stage}: recorded {out} (fingerprint {pending['sha256'][:12]})")
    return 0


def prepare(ns: argparse.Namespace) -> int:
    """Resolve the config, fetch the dump unless given, write the resolved config file."""
    import yaml

    from pipeline import config as cfgmod
    from pipeline.fs import atomic_write
    from pipeline.run import download_stage
    from pipeline.stage_config import load_config

    pairs: list[Any] = list(ns.set)
    pairs.append(("work_dir", ns.work))
    outs = (("parse.out", ns.pages), ("curate.out", ns.curated), ("featurise.out", ns.shards))
    for key, value in outs:
        if value:
            pairs.append((key, value))
    if ns.run:
        pairs.append(("train.run", ns.run))
    if not ns.dump:
        if not ns.wiki:
            from pipeline.errors import UsageError

            raise UsageError("name a dump (--dump PATH) or a wiki to download (--wiki WIKI)")
        pairs += [("download.wiki", ns.wiki), ("download.date", ns.date or "latest")]
        pairs += [(k, v) for k, v in (("download.kind", ns.kind), ("download.mirror", ns.mirror))]
    cfg = load_config(ns.config, [p for p in pairs if not isinstance(p, tuple) or p[1]])
    dumps = [_absolute(d) for d in ns.dump] if ns.dump else [str(p) for p in download_stage(cfg)]
    # Every stage reads where the previous one wrote: featurise the curated table, or the
    # pages with curate.enabled=false (as pipeline run does).
    source = cfg.paths.curated if cfg.curate.enabled else cfg.paths.pages
    cfg = replace(
        cfg,
        parse=replace(cfg.parse, input=dumps),
        curate=replace(cfg.curate, pages=cfg.paths.pages),
        featurise=replace(cfg.featurise, pages=source),
        train=replace(cfg.train, data=cfg.paths.shards),
    )
    out = Path(ns.out_config)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(cfgmod.to_dict(cfg), sort_keys=False)
    atomic_write(out, "# written by dags/pipeline_tasks.py prepare\n" + text)
    for d in dumps:
        print(f"dump: {d}")
    print(f"config: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The arguments of the four subcommands (see the module docstring)."""
    p = argparse.ArgumentParser(prog="dags/pipeline_tasks.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("prepare", help="resolve the config and fetch the dump")
    pp.add_argument("config", metavar="CONFIG.yaml")
    pp.add_argument("--work", required=True, metavar="DIR", help="work_dir")
    pp.add_argument("--out-config", required=True, metavar="FILE")
    pp.add_argument("--dump", action="append", default=[], metavar="PATH")
    pp.add_argument("--wiki")
    pp.add_argument("--date", metavar="YYYYMMDD|latest")
    pp.add_argument("--kind")
    pp.add_argument("--mirror", metavar="URL")
    pp.add_argument("--pages", metavar="URI", help="parse.out (default WORK/pages)")
    pp.add_argument("--curated", metavar="URI", help="curate.out (default WORK/curated)")
    pp.add_argument("--shards", metavar="URI", help="featurise.out (default WORK/shards)")
    pp.add_argument("--run", metavar="DIR", help="train.run (default WORK/runs/NAME)")
    pp.add_argument("--set", action="append", default=[], metavar="key.sub=value")
    for name in ("check", "record", "path"):
        sp = sub.add_parser(name)
        sp.add_argument("stage", choices=STAGES)
        sp.add_argument("config", metavar="FILE")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a failure is one line on stderr and exit status 1 or 2."""
    ns = build_parser().parse_args(argv)
    cfg = None
    try:
        from pipeline.cli.failures import report_failure, value_errors_fail

        with value_errors_fail():
            if ns.command == "prepare":
                return prepare(ns)
            if ns.command == "check":
                return check(ns.stage, ns.config)
            if ns.command == "record":
                return record(ns.stage, ns.config)
            from pipeline.stage_config import load_config

            print(_output(load_config(ns.config), ns.stage))
            return 0
    except Exception as e:
        return report_failure(e, f"scheduler {ns.command}", cfg, ns)


if __name__ == "__main__":
    sys.exit(main())
