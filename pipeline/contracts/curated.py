"""The ``curated/`` table (DESIGN.md "Contracts"): its schema and ``_stats.json``.

A curated folder holds ``part-NNNNN.parquet`` files of :func:`curated_schema` (the pages
schema plus :data:`CURATED_COLUMNS`), one per part file of the pages table it came from,
holding that part's rows in the same order, and the sidecars of a pages folder:
``_stats.json`` (:class:`CuratedStats`), ``_config.yaml``, ``_fingerprint.json``,
``_pipeline_output.json`` and ``_SUCCESS``. Every input row appears once.

The curated ``_stats.json`` embeds the pages table's own stats (``pages_stats``), so that
:func:`pipeline.contracts.pages.read_pages_dir` reads a curated folder as a pages table
whose ``ok_rows`` filter also requires ``curate_status = 'ok'`` (featurise reads either).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from pipeline.contracts import versioned_object
from pipeline.contracts.pages import (
    PAGES_SCHEMA,
    STATS_FILE,
    PagesError,
    PagesStats,
    check_file_names,
    part_files,
)
from pipeline.fs import filesystem

FORMAT = "curated"
FORMAT_VERSION = 1
CURATED_COLUMNS = (
    pa.field("lang", pa.string()),
    pa.field("lang_score", pa.float64()),
    pa.field("dup_of", pa.string()),
    pa.field("curate_status", pa.string()),
    pa.field("curate_reason", pa.string()),
)
"""The columns curate adds: detected language (ISO 639-1), its probability, the kept
copy's key ``wiki:page_id`` (null unless a duplicate), the status and the rule's detail."""
CURATE_STATUSES = ("ok", "duplicate", "near_duplicate", "language", "quality", "skipped")
"""Every value of ``curate_status``: ``skipped`` is a page whose parse ``status`` is not
``ok`` (it has no text to curate); the others as in DESIGN.md."""
OK_ROWS = "status = 'ok' AND text IS NOT NULL AND curate_status = 'ok'"
"""Spark SQL filter of the rows that go on to featurise."""


def curated_schema() -> pa.Schema:
    """:data:`pipeline.contracts.pages.PAGES_SCHEMA` followed by :data:`CURATED_COLUMNS`
    (built from the pages schema, so a column added there is carried here)."""
    return pa.schema([*PAGES_SCHEMA, *CURATED_COLUMNS])


@dataclass(frozen=True)
class CuratedStats:
    """The content of a curated folder's ``_stats.json``."""

    rows: int
    """Rows written; equals the pages table's rows."""
    status: dict[str, int]
    """Rows per ``curate_status`` (every value of :data:`CURATE_STATUSES`)."""
    rules: dict[str, int]
    """Removed rows per rule: the ``curate_reason`` text before its colon (``words``,
    ``dup_lines``, ``duplicate``, ``lang_mismatch`` …); flags on kept rows included."""
    languages: dict[str, dict[str, int]]
    """Per detected language of ``ok`` pages: ``{"kept": n, "removed": n}`` (``und``
    when no language was detected)."""
    examples: dict[str, list[dict[str, Any]]]
    """Per rule, up to 3 removed documents (smallest keys): ``key``, ``title``,
    ``reason``, ``text`` (its first 300 characters)."""
    near_dup: dict[str, int]
    """Near-dedup work: ``candidate_pairs``, ``verified_pairs``, ``components``,
    ``rounds`` (of min-label propagation)."""
    files: tuple[str, ...]
    """The Parquet part files, in order (plain names)."""
    pages: dict[str, Any]
    """The input: ``path`` and the sha256 of its ``_stats.json`` (``stats_sha256``)."""
    pages_stats: dict[str, Any]
    """The input pages table's ``_stats.json`` object."""
    config: dict[str, Any]
    """The ``curate`` config section that decides the output (without ``out``, ``pages``,
    ``overwrite``, ``enabled``; the whole resolved config is in ``_config.yaml``), so the
    file has the same bytes whatever the Spark master."""
    code_version: str
    """``pipeline.__version__`` of the code that wrote the table."""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """The bytes of ``_stats.json`` (the one writer): indented, key-sorted UTF-8."""
        text = json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> CuratedStats:
        """Parse and validate ``_stats.json`` bytes.

        Raises:
            PagesError: not JSON, another format or version, a missing field, or a part
                file name that is not a plain name.
        """
        data = versioned_object(
            raw,
            where,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            what="curated table",
            rerun="re-run `pipeline curate` with this code into a new folder",
            error=PagesError,
        )
        try:
            stats = cls(**{**data, "files": tuple(data["files"])})
        except TypeError as e:
            raise PagesError(f"{where}: malformed ({e})") from None
        check_file_names(stats.files, where)
        return stats


@dataclass(frozen=True)
class CuratedTable:
    """A committed curated folder, validated by :func:`read_curated_dir`."""

    uri: str
    stats: CuratedStats
    files: list[str] = field(default_factory=list)
    """URIs of its Parquet part files, in order."""
    stats_sha256: str = ""
    """Hex sha256 of the ``_stats.json`` bytes."""


def read_curated_dir(uri: str) -> CuratedTable:
    """Validate a committed ``curated/`` folder; return its stats and part-file URIs.

    Raises:
        PagesError: no folder, no ``_SUCCESS``, no or foreign ``_stats.json``, a listed
            file missing, not Parquet, or not of :func:`curated_schema`.
    """
    fs, path = filesystem(uri)
    if fs.get_file_info(f"{path}/_SUCCESS").type != pafs.FileType.File:
        raise PagesError(
            f"{uri} has no _SUCCESS: not a finished curate output; re-run `pipeline curate`"
        )
    try:
        with fs.open_input_stream(f"{path}/{STATS_FILE}", compression=None) as f:
            raw = f.read()
    except FileNotFoundError:
        raise PagesError(f"{uri}/{STATS_FILE} not found: not a curated folder") from None
    stats = CuratedStats.from_json(raw, f"{uri.rstrip('/')}/{STATS_FILE}")
    what = "the curated contract; re-run `pipeline curate`"
    files = part_files(fs, path, uri, stats.files, curated_schema(), what)
    return CuratedTable(uri, stats, files, hashlib.sha256(raw).hexdigest())


def is_curated_stats(raw: bytes) -> bool:
    """Whether ``_stats.json`` bytes are a curated table's (cheap check, no validation)."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def pages_stats_of(table: CuratedTable) -> PagesStats:
    """The input pages table's stats embedded in a curated table's ``_stats.json``."""
    raw = json.dumps(table.stats.pages_stats).encode("utf-8")
    return PagesStats.from_json(raw, f"{table.uri}/{STATS_FILE} (pages_stats)")
