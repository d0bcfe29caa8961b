"""Fetching a dump and its multistream index from a Wikimedia-style mirror.

The mirror is laid out as Wikimedia publishes it: ``<mirror>/<wiki>/<date>/`` holds
``<wiki>-<date>-<file>``, ``dumpstatus.json`` and ``<wiki>-<date>-sha1sums.txt``;
``<mirror>/<wiki>/latest/`` holds ``<wiki>-latest-<file>`` and an RSS feed per file.

Choices:

- ``latest`` is resolved to a date through the feed
  ``latest/<wiki>-latest-<kind>.xml.bz2-rss.xml``, whose ``<item><link>`` names the dated
  folder (``…/<wiki>/<date>``). Wikimedia updates it only once that file is complete, so
  the date has a finished dump of that kind; the files are then fetched from the dated
  folder under their dated names, so a later ``latest`` never resumes onto another dump.
- The file list comes from ``dumpstatus.json``: the job of the kind (``JOBS``) must be
  ``done``, and the files of the job whose names are ``<wiki>-<date>-<kind>…`` are taken,
  with their size and sha1. Big wikis publish numbered parts (``…-multistream1.xml-p1p41242
  .bz2``, each with ``…-multistream-index1.txt-p1p41242.bz2``) and a recombined single
  file; the parts are taken (parse runs them in parallel). Without a ``dumpstatus.json``
  the names and sha1s come from ``<wiki>-<date>-sha1sums.txt`` (no sizes then).
- Files land in ``<out>/<wiki>/<date>/`` under their published names, so a multistream dump
  and its index pair up for :func:`pipeline.wiki.sources.index_for`.
- A file is written to ``<name>.part``; an existing ``.part`` is resumed with ``Range:
  bytes=N-`` (a server that answers 200 instead is read from byte 0). Dropped connections
  are retried with exponential back-off. Size and sha1 are checked, then the ``.part`` is
  renamed to the final name: a final name always holds a verified file. A file failing the
  check is deleted (if it was resumed from an earlier attempt it is fetched once more from
  byte 0 first) and :class:`ChecksumError` names it with both sha1s.
- The folder records what this tool wrote in ``_pipeline_output.json`` (stage
  ``download``, :mod:`pipeline.outputs`): a name is added before its ``.part`` is created.
  A file already at a final name that matches the published sha1 is used whoever wrote
  it; one that does not match is fetched again only when the marker lists it and
  ``download.overwrite`` is on (``pipeline run`` sets it); a file or ``.part`` this tool
  did not write is never replaced or appended to.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

import pipeline
from pipeline import outputs
from pipeline.errors import OutputError
from pipeline.fs import file_digest
from pipeline.stage_config import DownloadConfig

# kind -> the dumpstatus.json job that publishes it (Wikimedia's job names). The
# ``…recombine`` jobs hold the single-file versions of big wikis' parts; not used here.
JOBS = {
    "pages-articles-multistream": "articlesmultistreamdump",
    "pages-articles": "articlesdump",
    "pages-meta-current": "metacurrentdump",
    "pages-meta-history": "metahistorybz2dump",
}
CHUNK = 1 << 20
MAX_METADATA_BYTES = 64 << 20
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}

Log = Callable[[str], None]
T = TypeVar("T")


class DownloadError(Exception):
    """A dump could not be fetched: missing on the mirror, job not done, network gave up."""


class ChecksumError(DownloadError):
    """A downloaded file's size or sha1 differs from the published one."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name, size in bytes (None if unknown) and sha1 (hex)."""

    name: str
    size: int | None
    sha1: str

    @property
    def is_index(self) -> bool:
        """True for a multistream index file."""
        return "-index" in self.name


class _Dropped(Exception):
    """A request failed in a way worth retrying (connection dropped, timeout, HTTP 5xx)."""


def _stderr(msg: str) -> None:
    tqdm.write(msg, file=sys.stderr)


def _request(url: str, cfg: DownloadConfig, start: int = 0) -> http.client.HTTPResponse | None:
    """Open ``url`` (from byte ``start``); None for HTTP 404/410/416.

    Raises:
        _Dropped: a network error or a transient HTTP status.
        DownloadError: any other HTTP error status.
    """
    headers = {
        "User-Agent": f"spark-gpu-pipeline/{pipeline.__version__} (pipeline download)",
        "Accept-Encoding": "identity",
    }
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)  # http(s) only: DownloadConfig checks
    try:
        return urllib.request.urlopen(req, timeout=cfg.timeout_s)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code in (404, 410, 416):
            return None
        if e.code in _TRANSIENT_HTTP:
            raise _Dropped(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # URLError, resets, timeouts
        raise _Dropped(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None


def _backoff(cfg: DownloadConfig, failures: int) -> float:
    """Seconds to wait before retry number ``failures`` (1-based): doubling, capped at 60."""
    return min(cfg.backoff_s * 2 ** (failures - 1), 60.0)


def _retrying(
    attempt: Callable[[], T],
    cfg: DownloadConfig,
    log: Log,
    who: str,
    give_up: Callable[[_Dropped], str],
    progressed: Callable[[], bool] = lambda: False,
) -> T:
    """Return ``attempt()``, calling it again after each :class:`_Dropped` with exponential
    back-off (:func:`_backoff`), each retry logged under ``who``. The failure count starts
    again from 1 when ``progressed()`` says the failed attempt got further.

    Raises:
        DownloadError: ``give_up(error)``, after more than ``cfg.retries`` failures in a row.
    """
    failures = 0
    while True:
        try:
            return attempt()
        except _Dropped as e:
            failures = 1 if progressed() else failures + 1
            if failures > cfg.retries:
                raise DownloadError(give_up(e)) from None
            wait = _backoff(cfg, failures)
            log(f"  {who}: {e}; retry {failures}/{cfg.retries} in {wait:.1f}s")
            time.sleep(wait)


def _get(url: str, cfg: DownloadConfig, log: Log) -> bytes | None:
    """Body of a small metadata file (retried like downloads), or None when it is missing.

    Raises:
        DownloadError: the retries ran out, an HTTP error status, or an oversized body.
    """

    def attempt() -> bytes | None:
        try:
            resp = _request(url, cfg)
            if resp is None:
                return None
            with resp:
                data = resp.read(MAX_METADATA_BYTES + 1)
                length = resp.headers.get("Content-Length") or ""
        except (OSError, http.client.HTTPException) as e:
            raise _Dropped(str(e)) from None
        if length.isdigit() and len(data) < int(length):
            raise _Dropped(f"connection closed after {len(data)} of {length} bytes")
        return data

    data = _retrying(
        attempt, cfg, log, url, lambda e: f"{url}: giving up after {cfg.retries} retries: {e}"
    )
    if data is not None and len(data) > MAX_METADATA_BYTES:
        raise DownloadError(f"{url}: larger than {MAX_METADATA_BYTES} bytes; not metadata")
    return data


def resolve_date(cfg: DownloadConfig, log: Log = _stderr) -> str:
    """Return ``cfg.date``, or for ``latest`` the date named by the mirror's RSS feed.

    Raises:
        DownloadError: the feed is missing or names no date.
    """
    if cfg.date != "latest":
        return cfg.date
    wiki, mirror = cfg.wiki, cfg.mirror.rstrip("/")
    url = f"{mirror}/{wiki}/latest/{wiki}-latest-{cfg.kind}.xml.bz2-rss.xml"
    raw = _get(url, cfg, log)
    if raw is None:
        raise DownloadError(
            f"cannot resolve 'latest': {url} not found; check the wiki name {wiki!r} and the "
            "mirror, or pass --date YYYYMMDD"
        )
    dates = re.findall(rf"/{re.escape(wiki or '')}/(\d{{8}})\b", raw.decode("utf-8", "replace"))
    if not dates:
        raise DownloadError(f"{url}: the feed names no dated dump folder; pass --date YYYYMMDD")
    return max(dates)


def _parse_sha1sums(data: bytes, url: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for lineno, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not _SHA1.match(parts[0].lower()):
            raise DownloadError(f"{url} line {lineno}: not a 'sha1  name' line: {line!r}")
        sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def list_files(cfg: DownloadConfig, date: str, log: Log = _stderr) -> list[RemoteFile]:
    """The published files of ``cfg.kind`` for ``cfg.wiki`` at ``date`` (dumps and indexes).

    Raises:
        DownloadError: no such dump, the job missing or not ``done``, malformed metadata, a
            file without a published sha1, or no file of the kind.
    """
    wiki, kind, job_name = cfg.wiki or "", cfg.kind, JOBS[cfg.kind]
    base = f"{cfg.mirror.rstrip('/')}/{wiki}/{date}"
    status_url, sums_url = f"{base}/dumpstatus.json", f"{base}/{wiki}-{date}-sha1sums.txt"
    pattern = re.compile(
        rf"^{re.escape(wiki)}-{date}-{re.escape(kind)}(-index)?(\d*)\.(?:xml|txt)"
        r"(-p\d+p\d+)?\.bz2$"
    )
    sums: dict[str, str] | None = None
    raw = _get(status_url, cfg, log)
    if raw is None:
        body = _get(sums_url, cfg, log)
        if body is None:
            raise DownloadError(
                f"no {wiki} dump dated {date} on {cfg.mirror}: neither {status_url} nor "
                f"{sums_url} exists; check the wiki name and the date"
            )
        sums = _parse_sha1sums(body, sums_url)
        where = sums_url
        entries = {n: {"sha1": s} for n, s in sums.items()}
    else:
        where = status_url
        try:
            status = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DownloadError(f"{status_url}: not valid JSON: {e}") from None
        jobs = status.get("jobs") if isinstance(status, dict) else None
        if not isinstance(jobs, dict):
            raise DownloadError(f"{status_url}: no 'jobs' mapping; not a dumpstatus.json")
        job = jobs.get(job_name)
        if not isinstance(job, dict):
            raise DownloadError(
                f"{status_url} has no job {job_name!r} (kind {kind}); jobs there: "
                f"{', '.join(sorted(jobs)) or 'none'}"
            )
        if job.get("status") != "done":
            raise DownloadError(
                f"{status_url}: job {job_name!r} (kind {kind}) is {job.get('status')!r}, not "
                "'done'; wait for it to finish or pick an earlier --date"
            )
        entries = job.get("files") or {}
        if not isinstance(entries, dict):
            raise DownloadError(f"{status_url}: job {job_name!r} 'files' is not a mapping")
    files: list[RemoteFile] = []
    for name in sorted(entries):
        meta = entries[name]
        if not pattern.match(name) or not isinstance(meta, dict):
            continue
        size, sha1 = meta.get("size"), meta.get("sha1")
        if sha1 is None:  # not in dumpstatus.json: look it up in the sha1sums file
            if sums is None:
                body = _get(sums_url, cfg, log)
                sums = _parse_sha1sums(body, sums_url) if body is not None else {}
            sha1 = sums.get(name)
        if not isinstance(sha1, str) or not _SHA1.match(sha1.lower()):
            raise DownloadError(f"{where}: no valid sha1 published for {name}; cannot verify it")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise DownloadError(f"{where}: {name} has an invalid size {size!r}")
        files.append(RemoteFile(name, size, sha1.lower()))
    parts = [f for f in files if (m := pattern.match(f.name)) and any(m.group(2, 3))]
    files = parts or files  # big wikis: the numbered parts, not the recombined file
    if not files:
        raise DownloadError(f"{where} lists no {kind} files named {wiki}-{date}-{kind}…bz2")
    return files


def _sha1() -> hashlib._Hash:
    return hashlib.sha1(usedforsecurity=False)


def sha1_of(path: Path, upto: int | None = None) -> hashlib._Hash:
    """sha1 hasher fed with the first ``upto`` bytes of ``path`` (all when None).

    A whole file goes through :func:`pipeline.fs.file_digest`; a prefix (the part of a
    ``.part`` file a resumed download continues from) is read here, because
    :func:`hashlib.file_digest` always reads to the end of the file.
    """
    if upto is None:
        return file_digest(path, _sha1)
    h, left = _sha1(), upto
    with path.open("rb") as f:
        while left > 0 and (block := f.read(min(CHUNK, left))):
            h.update(block)
            left -= len(block)
    return h


def _transfer(
    url: str, part: Path, remote: RemoteFile, cfg: DownloadConfig, bar: tqdm, log: Log
) -> tuple[str, bool]:
    """Fill ``part`` with ``url``, resuming and retrying; return (sha1 hex, resumed?)."""
    hasher, hashed, resumed, before = _sha1(), -1, False, 0

    def size() -> int:
        return part.stat().st_size if part.exists() else 0

    def attempt() -> tuple[str, bool]:
        nonlocal hasher, hashed, resumed, before
        have = size()
        if remote.size is not None and have > remote.size:
            part.unlink()
            have = 0
        if hashed != have:
            hasher, hashed = (sha1_of(part, have) if have else _sha1()), have
        if remote.size is not None and have == remote.size:
            return hasher.hexdigest(), resumed or have > 0
        before = have
        resp = _request(url, cfg, have)
        if resp is None:
            if have:  # 416: nothing past our bytes; let the size/sha1 check decide
                return hasher.hexdigest(), True
            raise DownloadError(f"{url}: not found (HTTP 404) though the mirror lists it")
        with resp:
            start = _start_of(resp, have)
            if start not in (0, have):
                raise DownloadError(
                    f"{url}: asked for bytes {have}- but the server sent bytes {start}-"
                )
            if start != have:
                log(f"  {remote.name}: the server ignored the Range request; from byte 0")
                hasher, hashed, have = _sha1(), 0, 0
                bar.reset(total=remote.size)
            resumed = resumed or have > 0
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            got = 0
            with part.open("ab" if have else "wb") as f:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as e:
                        raise _Dropped(f"{type(e).__name__}: {e}") from None
                    if not block:
                        break
                    f.write(block)
                    hasher.update(block)
                    got, hashed = got + len(block), hashed + len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
            if expected is not None and got < expected:
                raise _Dropped(f"connection closed after {got} of {expected} bytes")
            if expected is None and remote.size is not None and have + got < remote.size:
                raise _Dropped(f"connection closed at byte {have + got} of {remote.size}")
            return hasher.hexdigest(), resumed  # complete: the caller checks size and sha1

    def give_up(e: _Dropped) -> str:
        return (
            f"{url}: giving up after {cfg.retries} retries ({e}); {part} is kept, run the same "
            "command again to resume it"
        )

    return _retrying(attempt, cfg, log, remote.name, give_up, lambda: size() > before)


def _start_of(resp: http.client.HTTPResponse, asked: int) -> int:
    """First byte of the body: 0 for a 200, the ``Content-Range`` start for a 206."""
    if resp.status != 206:
        return 0
    m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(m.group(1)) if m else -1


def fetch_file(
    remote: RemoteFile,
    url: str,
    folder: Path,
    cfg: DownloadConfig,
    *,
    progress: bool = True,
    log: Log = _stderr,
) -> Path:
    """Download ``url`` to ``folder/remote.name`` through a ``.part`` file; verify; rename.

    Returns the final path. A final file already matching the size and sha1 is kept.

    Raises:
        ChecksumError: size or sha1 differ from the published ones (the ``.part`` is gone).
        DownloadError: the mirror lacks the file or the retries ran out (``.part`` kept).
    """
    path, part = folder / remote.name, folder / f"{remote.name}.part"
    if path.is_file():
        if (remote.size is None or path.stat().st_size == remote.size) and (
            sha1_of(path).hexdigest() == remote.sha1
        ):
            log(f"{remote.name}: up to date")
            part.unlink(missing_ok=True)
            return path
        log(f"{remote.name}: the local file does not match the published sha1; fetching again")
        path.unlink()  # ours (checked by _check_owned before any fetch): fetched again
    fresh = False
    while True:
        have = part.stat().st_size if part.exists() else 0
        with tqdm(
            total=remote.size,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=remote.name,
            file=sys.stderr,
            leave=False,
            disable=None if progress else True,
        ) as bar:
            actual, resumed = _transfer(url, part, remote, cfg, bar, log)
        size = part.stat().st_size
        if actual == remote.sha1 and remote.size in (None, size):
            os.replace(part, path)
            log(f"{remote.name}: downloaded, {size} bytes, sha1 verified")
            return path
        part.unlink()
        if resumed and not fresh:  # the earlier bytes may be what is wrong: once from 0
            log(f"{remote.name}: the resumed file fails its check; fetching it from byte 0")
            fresh = True
            continue
        raise ChecksumError(
            f"{url}: downloaded {size} bytes with sha1 {actual}, but the mirror publishes "
            f"{remote.size if remote.size is not None else '?'} bytes with sha1 {remote.sha1}; "
            f"the partial file was deleted and nothing was written to {path}"
        )


def _verified(path: Path, remote: RemoteFile) -> bool:
    """Whether ``path`` holds ``remote`` (size and sha1 as published)."""
    return (
        path.is_file()
        and (remote.size in (None, path.stat().st_size))
        and (sha1_of(path).hexdigest() == remote.sha1)
    )


def _check_owned(
    folder: Path, files: list[RemoteFile], overwrite: bool
) -> tuple[set[str], set[str]]:
    """The names this tool wrote in ``folder`` (its marker) and those already holding a
    verified file; refuse, before any fetch, a file to be written whose name holds
    something else.

    Raises:
        OutputError: a ``.part`` this tool did not write; a final file that does not
            match its sha1 and that this tool did not write, or did write but
            ``overwrite`` is off.
    """
    marker = outputs.read_marker(outputs.LOCAL, str(folder))
    if marker is not None and marker["stage"] != "download":
        raise OutputError(
            f"{folder} holds a {marker['stage']} output; choose another --out (download.out)"
        )
    owned = set(marker["files"]) if marker else set()
    verified = set()
    for f in files:
        part = folder / f"{f.name}.part"
        if part.exists() and part.name not in owned:
            raise OutputError(
                f"{part} exists and was not written by pipeline download; move it away or "
                "choose another --out (download.out)"
            )
        path = folder / f.name
        if _verified(path, f):
            verified.add(f.name)
        elif path.exists():
            if f.name not in owned:
                raise OutputError(
                    f"{path} exists, was not written by pipeline download and does not match "
                    "the published sha1; move it away or choose another --out (download.out)"
                )
            if not overwrite:
                raise OutputError(
                    f"{path} (downloaded earlier) no longer matches the published sha1; pass "
                    "--overwrite (download.overwrite=true) to fetch it again"
                )
    return owned, verified


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so that two downloads never share a ``.part``."""
    with (folder / ".download.lock").open("a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(f"another pipeline download is writing to {folder}") from None
        yield


def download_dump(
    cfg: DownloadConfig, out: str | os.PathLike[str], *, progress: bool = True, log: Log = _stderr
) -> list[Path]:
    """Fetch dump ``cfg.kind`` of ``cfg.wiki`` at ``cfg.date`` (and its indexes) into
    ``<out>/<wiki>/<date>/``; return the dump files (not the indexes), ready for parse.

    Raises:
        ValueError: ``cfg.wiki`` is not set.
        DownloadError: see :func:`resolve_date`, :func:`list_files`, :func:`fetch_file`;
            also too little free disk space or a file that cannot be written.
    """
    if not cfg.wiki:
        raise ValueError("no wiki given; name one, e.g. pipeline download enwiki")
    date = resolve_date(cfg, log)
    files = list_files(cfg, date, log)
    folder = Path(out) / cfg.wiki / date
    names = {f.name for f in files}
    for f in files:
        index = re.sub(r"multistream(\d*)\.xml", r"multistream-index\1.txt", f.name, count=1)
        if not f.is_index and index != f.name and index not in names:
            log(f"warning: the mirror lists no index {index} for {f.name}; parse reads it whole")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            need = sum(
                f.size
                - (
                    (folder / f"{f.name}.part").stat().st_size
                    if (folder / f"{f.name}.part").is_file()
                    else 0
                )
                for f in files
                if f.size is not None and not (folder / f.name).is_file()
            )
            free = shutil.disk_usage(folder).free
            if need > free:
                raise DownloadError(
                    f"{folder}: {need} bytes still to download but only {free} free; free "
                    "space or set download.out to a bigger disk"
                )
            owned, verified = _check_owned(folder, files, cfg.overwrite)
            base = f"{cfg.mirror.rstrip('/')}/{cfg.wiki}/{date}"
            log(f"{cfg.wiki} {date} {cfg.kind}: {len(files)} file(s) from {base} -> {folder}")
            paths = []
            for f in files:
                if f.name in verified:
                    log(f"{f.name}: up to date")
                    paths.append(folder / f.name)
                    continue
                owned |= {f.name, f"{f.name}.part"}
                outputs.write_marker(
                    outputs.LOCAL, str(folder), outputs.marker_record("download", owned)
                )
                paths.append(
                    fetch_file(f, f"{base}/{f.name}", folder, cfg, progress=progress, log=log)
                )
    except OSError as e:
        raise DownloadError(f"{e.filename or folder}: cannot write: {e.strerror or e}") from None
    return [p for p, f in zip(paths, files, strict=True) if not f.is_index]
