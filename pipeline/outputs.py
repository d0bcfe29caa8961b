"""Which output paths a stage may write, and proof of what it wrote before.

The user's files are sacred: a stage replaces an existing path only when that path is
provably a previous (complete or partial) output of the same stage, and then deletes only
the files that output lists as its own. The proof is the marker file :data:`MARKER`
(``_pipeline_output.json``), written by the stage into every folder it publishes::

    {"tool": "spark-gpu-pipeline", "stage": "parse", "marker_version": 1,
     "state": "complete", "files": ["_SUCCESS", "part-00000.parquet", ...]}

``files`` are paths relative to the folder (``/``-separated), the marker included. The
name starts with ``_`` so that Parquet and Arrow readers skip it (Hive/Spark convention).

Rules, checked before any work (:func:`claim_output`, :func:`check_not_input`):

- a path that does not exist, or an empty folder: written;
- a folder whose marker names the same stage: replaced only with ``overwrite``
  (``--overwrite``, ``<stage>.overwrite=true``; ``pipeline run`` sets it for the folders
  it owns), keeping every file the marker does not list;
- anything else (a file, a folder without a marker, a marker of another stage or an
  unreadable one): refused with :class:`pipeline.errors.OutputError` (exit 2);
- an output that is, contains or lies inside an input (real paths, symlinks resolved;
  URIs by scheme, host and path): refused.

Spark's ``DataFrameWriter`` refuses an existing path by default (``mode("error")``); this
is the same spirit, with a proven ``overwrite`` instead of a blind one.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import posixpath
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

import pipeline
from pipeline.errors import OutputError
from pipeline.fs import atomic_write, filesystem, read_json_or_none

MARKER = "_pipeline_output.json"
LOCAL = pafs.LocalFileSystem()
TOOL = "spark-gpu-pipeline"
MARKER_VERSION = 1
# stage -> (the flag naming its output, the overwrite flag) for messages
FLAGS = {
    "parse": ("--out (parse.out)", "--overwrite (parse.overwrite=true)"),
    "curate": ("--out (curate.out)", "--overwrite (curate.overwrite=true)"),
    "featurise": ("--out (featurise.out)", "--overwrite (featurise.overwrite=true)"),
    "train": ("--run (train.run)", "a new --run folder"),
    "report": ("the run folder", "--overwrite"),
    "download": ("--out (download.out)", "--overwrite (download.overwrite=true)"),
}
_SHOWN = 3  # foreign names shown in a message


def marker_record(
    stage: str, files: Iterable[str], state: str = "complete", **extra: Any
) -> dict[str, Any]:
    """The marker's content for ``stage`` owning ``files`` (relative paths; sorted, the
    marker itself added). ``state`` is ``complete``, ``staging`` or ``partial``."""
    return {
        "tool": TOOL,
        "stage": stage,
        "marker_version": MARKER_VERSION,
        "state": state,
        "code_version": pipeline.__version__,
        "files": sorted(set(files) | {MARKER}),
        **extra,
    }


def marker_bytes(record: dict[str, Any]) -> bytes:
    """The marker's bytes: indented, key-sorted JSON (stable for the same content)."""
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def read_marker(fs: pafs.FileSystem, folder: str) -> dict[str, Any] | None:
    """The marker of ``folder``, or None when it has none or it is not ours (not JSON,
    another tool, no file list): such a folder proves nothing and is never replaced."""
    data = read_json_or_none(f"{folder}/{MARKER}", fs)
    if (
        data is None
        or data.get("tool") != TOOL
        or not isinstance(data.get("stage"), str)
        or not isinstance(data.get("files"), list)
        or not all(isinstance(n, str) and _safe_rel(n) for n in data["files"])
    ):
        return None
    return data


def _safe_rel(name: str) -> bool:
    """A relative path that stays inside its folder (no ``..``, not absolute)."""
    norm = posixpath.normpath(name)
    return bool(name) and not name.startswith("/") and norm != ".." and not norm.startswith("../")


def write_marker(fs: pafs.FileSystem, folder: str, record: dict[str, Any]) -> None:
    """Write ``record`` as ``folder/_pipeline_output.json`` (atomically on POSIX)."""
    data = marker_bytes(record)
    if isinstance(fs, pafs.LocalFileSystem):
        atomic_write(f"{folder}/{MARKER}", data)
        return
    with fs.open_output_stream(f"{folder}/{MARKER}", compression=None) as f:
        f.write(data)


# --- where things are ---------------------------------------------------------------------


def location(uri: str) -> tuple[str, str]:
    """``(filesystem key, normalised path)`` of a local path or URI, to compare places.

    Local paths and ``file://`` URIs resolve symlinks (``os.path.realpath``); ``s3a://``
    is ``s3://``; other URIs keep scheme and host (``hdfs://nn:8020``) as the key.
    """
    if "://" not in uri or uri.startswith("file://"):
        path = uri[len("file://") :] if uri.startswith("file://") else uri
        return "file", os.path.realpath(os.path.expanduser(path))
    scheme, rest = uri.split("://", 1)
    scheme = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}.get(scheme, scheme)
    authority, _, path = rest.partition("/")
    return f"{scheme}://{authority}", posixpath.normpath("/" + path)


def _within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


def check_not_input(stage: str, out: str, inputs: Iterable[str]) -> None:
    """Refuse an output that is, contains or lies inside any input.

    Args:
        stage: the stage (for the message).
        out: the output folder (path or URI).
        inputs: input files, folders and glob patterns (a pattern also refuses an output
            that it would match).

    Raises:
        OutputError: the first overlap found, naming both paths.
    """
    key, path = location(out)
    flag = FLAGS[stage][0]
    for item in inputs:
        ikey, ipath = location(item)
        if ikey != key:
            continue
        if _within(path, ipath) or _within(ipath, path):
            how = "is" if path == ipath else ("lies inside" if _within(path, ipath) else "holds")
            raise OutputError(
                f"output {out} {how} the input {item}; choose another {flag}, outside every input"
            )
        if glob.has_magic(ipath) and any(fnmatch.fnmatch(p, ipath) for p in _ancestors(path)):
            raise OutputError(
                f"output {out} matches the input pattern {item}; choose another {flag}, outside it"
            )


def _ancestors(path: str) -> list[str]:
    """``path`` and every folder above it."""
    out = [path]
    while posixpath.dirname(out[-1]) != out[-1]:
        out.append(posixpath.dirname(out[-1]))
    return out


# --- claiming an output path --------------------------------------------------------------


@dataclass
class Claim:
    """What lies at an output path that a stage may write (:func:`claim_output`).

    Attributes:
        exists: a folder is there (empty, or a previous output of this stage).
        previous: the marker of the previous output, or None.
        foreign: relative paths found there that the previous output does not list; they
            are kept in place when the output is replaced.
    """

    exists: bool = False
    previous: dict[str, Any] | None = None
    foreign: list[str] = field(default_factory=list)


def _listing(fs: pafs.FileSystem, folder: str) -> list[str]:
    """Relative paths of the files (and empty folders) under ``folder``."""
    infos = fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    files = {i.path[len(folder) + 1 :] for i in infos if i.type != pafs.FileType.Directory}
    dirs = {i.path[len(folder) + 1 :] for i in infos if i.type == pafs.FileType.Directory}
    parents = {posixpath.dirname(f) for f in files | dirs}
    return sorted(files | (dirs - parents))


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def claim_output(stage: str, out: str, *, overwrite: bool) -> Claim:
    """Check that ``stage`` may write ``out``; return what is there.

    Raises:
        OutputError: ``out`` is a file; a folder holding files without this tool's
            marker (named, with a hint when it looks like an older version's output); a
            previous output of another stage; a previous output of this stage without
            ``overwrite``.
    """

    fs, path = filesystem(out)
    if isinstance(fs, pafs.LocalFileSystem):
        path = os.path.realpath(path)
    where, again = FLAGS[stage]
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return Claim()
    if info.type != pafs.FileType.Directory:
        raise OutputError(f"{out} exists and is a file, not a folder; choose another {where}")
    top = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path)))
    if not top:
        return Claim(exists=True)
    marker = read_marker(fs, path)
    if marker is None:  # named from the top level only: the folder may be huge (a home)
        found = [
            f"{n}/" if fs.get_file_info(f"{path}/{n}").type == pafs.FileType.Directory else n
            for n in top
        ]
        old = {"_SUCCESS", "stats.json", "manifest.json", "config.yaml"} & set(top)
        hint = (
            " (it looks like an output of an older version, which wrote no marker; delete "
            "it yourself if so)"
            if old
            else ""
        )
        raise OutputError(
            f"{out} exists and holds files this tool did not write ({_names(found)}){hint}; "
            f"choose a new or empty folder for {where}"
        )
    if marker["stage"] != stage:
        raise OutputError(
            f"{out} holds a {marker['stage']} output, not a {stage} one; choose another {where}"
        )
    if not overwrite:
        raise OutputError(
            f"{out} holds a previous {stage} output; pass {again} to replace it, or "
            f"choose another {where}"
        )
    owned = set(marker["files"])
    found = _listing(fs, path)
    foreign = [f for f in found if f not in owned]
    return Claim(exists=True, previous=marker, foreign=foreign)


def remove_owned(fs: pafs.FileSystem, folder: str, marker: dict[str, Any]) -> list[str]:
    """Delete from ``folder`` the files ``marker`` lists, then the folders that deleting them
    left empty; return the relative paths left (not ours). Folders the marker lists
    (``dir/``, a run folder's) and folders we did not empty are never deleted."""
    emptied: set[str] = set()
    for name in marker["files"]:
        target = f"{folder}/{name}"
        if fs.get_file_info(target).type == pafs.FileType.File:
            fs.delete_file(target)
            parent = posixpath.dirname(name)
            while parent:
                emptied.add(parent)
                parent = posixpath.dirname(parent)
    for rel in sorted(emptied, key=len, reverse=True):  # a child's path is longer
        path = f"{folder}/{rel}"
        if fs.get_file_info(path).type == pafs.FileType.Directory and not fs.get_file_info(
            pafs.FileSelector(path)
        ):
            fs.delete_dir(path)
    return _listing(fs, folder) if fs.get_file_info(folder).type else []


def staging_record(stage: str, target: str) -> dict[str, Any]:
    """Marker of a staging folder: names the stage, the target and the process, so that a
    later run can prove a leftover of a killed run is this tool's and remove it."""
    return marker_record(
        stage, [], state="staging", target=target, pid=os.getpid(), host=socket.gethostname()
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_leftovers(fs: pafs.FileSystem, parent: str, name: str, stage: str) -> list[str]:
    """Hidden ``.NAME.staging-*`` / ``.NAME.old-*`` folders beside an output that a killed
    run of ``stage`` left: each carries this tool's marker naming ``stage``, and the
    process that made it (on this host) is gone. Others are never touched."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(parent))
    except (FileNotFoundError, OSError):
        return []
    host = socket.gethostname()
    stale = []
    for info in infos:
        base = info.base_name
        if info.type != pafs.FileType.Directory or not (
            base.startswith(f".{name}.staging-") or base.startswith(f".{name}.old-")
        ):
            continue
        marker = read_marker(fs, info.path)
        if marker is None or marker["stage"] != stage:
            continue
        pid, mhost = marker.get("pid"), marker.get("host")
        if mhost == host and isinstance(pid, int) and _alive(pid):
            continue  # a live run (or a reused pid): leave it
        if mhost not in (None, host):
            continue  # another host's run: cannot tell whether it is alive
        stale.append(info.path)
    return stale


# What a run folder holds: written by the train stage, resumed, never replaced.
RUN_FILES = (
    "config.yaml",
    "metrics.jsonl",
    "_fingerprint.json",
    "checkpoints/",
    "model/",
    "report/",
    "tensorboard/",
)


def claim_run_folder(run: str, data: str, *, create: bool = True) -> None:
    """Check that the train stage may write the run folder ``run``; mark it as a run.

    A new or empty folder gets the marker (with ``create``; without it nothing is written:
    a check before any work); a folder with the train marker is a previous run, which
    training resumes (its checkpoints decide whether it may). Run folders are POSIX paths
    (README, "Storage").

    Raises:
        OutputError: the run folder overlaps the shards ``data``; it is a file; it holds
            files this tool did not write or another stage's output.
    """
    check_not_input("train", run, [data])
    path = os.path.realpath(run)
    where = FLAGS["train"][0]
    if os.path.lexists(path) and not os.path.isdir(path):
        raise OutputError(f"{run} exists and is a file, not a run folder; choose another {where}")
    fs = pafs.LocalFileSystem()
    if os.path.isdir(path) and os.listdir(path):
        marker = read_marker(fs, path)
        if marker is None:
            found = sorted(os.listdir(path))
            raise OutputError(
                f"{run} exists and holds files this tool did not write ({_names(found)}); "
                f"choose a new or empty folder for {where}"
            )
        if marker["stage"] != "train":
            raise OutputError(
                f"{run} holds a {marker['stage']} output, not a training run; choose "
                f"another {where}"
            )
        return
    if create:
        os.makedirs(path, exist_ok=True)
        write_marker(fs, path, marker_record("train", RUN_FILES))
