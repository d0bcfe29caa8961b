"""The ``pages/`` table (DESIGN.md "Contracts"): its Parquet schema and ``_stats.json``.

A pages folder holds ``part-NNNNN.parquet`` files of :data:`PAGES_SCHEMA` and, as
sidecars whose names start with ``_`` so that every Parquet reader skips them (Hive/Spark
convention): ``_stats.json`` (:class:`PagesStats`), ``_config.yaml`` (the resolved config),
``_fingerprint.json`` (``pipeline run``), ``_pipeline_output.json`` (the ownership marker)
and ``_SUCCESS``. ``pq.read_table(dir)``, pandas, Spark, DuckDB and Hugging Face
``datasets`` open the folder as it is.

One writer (:meth:`PagesStats.to_json`) and one validating reader (:func:`read_pages_dir`).
Format history: version 1 wrote ``stats.json``/``config.yaml``/``fingerprint.json``
beside the data (readers of other tools failed on them); version 2 is this layout. The
reader refuses version 1 and says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.contracts import versioned_object
from pipeline.fs import filesystem, join_uri

FORMAT = "pages"
FORMAT_VERSION = 2
STATS_FILE = "_stats.json"
TOP_TEMPLATES = 50
"""Template names kept in the stats' ``templates_dropped`` and ``templates_rendered``."""
CONFIG_FILE = "_config.yaml"
FINGERPRINT_FILE = "_fingerprint.json"


PAGES_SCHEMA = pa.schema(
    [
        ("wiki", pa.string()),
        ("page_id", pa.int64()),
        ("ns", pa.int32()),
        ("title", pa.string()),
        ("redirect_to", pa.string()),
        ("revision_id", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("content_model", pa.string()),
        ("wikitext_bytes", pa.int64()),
        ("text", pa.string()),
        ("categories", pa.list_(pa.string())),
        ("status", pa.string()),
        ("error", pa.string()),
        ("source", pa.string()),
    ]
)
"""One row per input ``<page>``; the columns of DESIGN.md's pages contract."""
STATUSES = ("ok", "redirect", "namespace", "non_wikitext", "empty", "too_large", "parse_error")
"""Every value of the ``status`` column, in report order."""


class PagesError(ValueError):
    """A pages folder is incomplete, of another format or version, or of another schema."""


@dataclass(frozen=True)
class Damage:
    """A truncated or corrupt input kept with ``parse.on_damaged=keep``."""

    file: str
    """The input file (path or URI)."""
    position: str
    """Where the damage starts, e.g. ``line 1001, uncompressed byte 52345``."""
    offset: int | None
    """Compressed byte offset of the damage, when known."""
    reason: str
    """What is wrong (the XML or decompression error)."""
    complete_pages_before: int
    """Complete pages read before the damage (all kept)."""
    cut_off_page: bool
    """True when a ``<page>`` was cut off by the damage (it has no row)."""


@dataclass(frozen=True)
class InputStats:
    """What parse read from one input file."""

    file: str
    """The input file (path or URI)."""
    size: int
    """File size in bytes."""
    tasks: int
    """Spark tasks that read it (several for a split multistream dump)."""
    pages: int
    """Complete ``<page>`` elements read."""
    rows: int
    """Rows written (equals ``pages``)."""
    bytes_read: int
    """Compressed bytes read."""
    uncompressed_bytes: int
    """Uncompressed XML bytes read."""
    status: dict[str, int]
    """Rows per status."""
    namespaces: dict[str, int]
    """Rows per namespace number (keys are strings, JSON objects' keys)."""
    damaged: Damage | None = None
    """The damage kept, or None."""


@dataclass(frozen=True)
class Totals:
    """Sums over the inputs."""

    pages: int
    """Complete ``<page>`` elements read."""
    rows: int
    """Rows written; equals ``pages`` (every input page is accounted for)."""
    bytes_read: int
    """Compressed bytes read."""
    uncompressed_bytes: int
    """Uncompressed XML bytes read."""
    status: dict[str, int]
    """Rows per status, every status of :data:`STATUSES` present."""
    namespaces: dict[str, int]
    """Rows per namespace number, in numeric order."""
    templates_dropped: dict[str, int] = field(default_factory=dict)
    """Most frequent templates the cleaner dropped, ``{normalised name: count}`` (top
    :data:`TOP_TEMPLATES`, most first; empty in stats written before issue 14)."""
    templates_rendered: dict[str, int] = field(default_factory=dict)
    """Most frequent templates the cleaner rendered as text (:mod:`pipeline.wiki.templates`),
    likewise."""


@dataclass(frozen=True)
class PagesStats:
    """The content of ``_stats.json``."""

    inputs: tuple[InputStats, ...]
    """Per input file, in the order given."""
    totals: Totals
    """Sums over the inputs."""
    tasks: int
    """Spark tasks of the job."""
    files: tuple[str, ...]
    """The Parquet part files of the table, in order (plain names in the folder)."""
    config: dict[str, Any]
    """The resolved config of the job (also in ``_config.yaml``)."""
    code_version: str
    """``pipeline.__version__`` of the code that wrote the table."""
    format: str = FORMAT
    """Always :data:`FORMAT`."""
    format_version: int = FORMAT_VERSION
    """Always :data:`FORMAT_VERSION` for what this code writes and reads."""

    @property
    def damaged(self) -> list[Damage]:
        """The damaged inputs that were kept."""
        return [i.damaged for i in self.inputs if i.damaged is not None]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object (``damaged`` included for readers without this code)."""
        out = asdict(self)
        out["damaged"] = [asdict(d) for d in self.damaged]
        return json.loads(json.dumps(out))  # plain JSON types: lists, not tuples

    def to_json(self) -> bytes:
        """The bytes of ``_stats.json`` (the one writer): indented, key-sorted UTF-8."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> PagesStats:
        """Parse and validate ``_stats.json`` bytes.

        Raises:
            PagesError: not JSON, another format or version, a missing or mistyped field,
                a part file name that is not a plain name.
        """
        data = versioned_object(
            raw,
            where,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            what="pages table",
            rerun="re-run `pipeline parse` with this code into a new folder",
            error=PagesError,
        )
        try:
            inputs = tuple(
                InputStats(**{**i, "damaged": Damage(**i["damaged"]) if i["damaged"] else None})
                for i in data["inputs"]
            )
            stats = cls(
                inputs=inputs,
                totals=Totals(**data["totals"]),
                tasks=int(data["tasks"]),
                files=tuple(data["files"]),
                config=dict(data["config"]),
                code_version=str(data["code_version"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise PagesError(f"{where}: malformed ({type(e).__name__}: {e})") from None
        check_file_names(stats.files, where)
        return stats


def check_file_names(names: Sequence[object], where: str) -> None:
    """Check that a stats file's ``files`` are plain data file names of its folder.

    Raises:
        PagesError: a name that is not a string, holds ``/``, or starts with ``.`` or ``_``
            (hidden or sidecar files, which readers skip).
    """
    for name in names:
        if not isinstance(name, str) or "/" in name or name.startswith((".", "_")):
            raise PagesError(f"{where}: file name {name!r} is not a plain data file name")


def part_files(
    fs: pafs.FileSystem, path: str, uri: str, names: Sequence[str], schema: pa.Schema, what: str
) -> list[str]:
    """URIs of the part files ``names`` of folder ``uri`` (``path`` on ``fs``), each checked
    to be Parquet of ``schema`` (metadata ignored).

    Raises:
        PagesError: a file missing, not Parquet, or of another schema (``what`` names the
            contract in the message, e.g. "the pages contract").
    """
    files = []
    for name in names:
        file_path = f"{path}/{name}"
        try:
            found = pq.read_schema(fs.open_input_file(file_path)).remove_metadata()
        except FileNotFoundError:
            raise PagesError(f"{uri}/{name}: listed in {STATS_FILE} but missing") from None
        except pa.ArrowInvalid as e:
            raise PagesError(f"{uri}/{name}: not a Parquet file ({e})") from None
        if not found.equals(schema):
            raise PagesError(
                f"{uri}/{name}: schema differs from {what}; expected\n{schema}\ngot\n{found}"
            )
        files.append(join_uri(uri, file_path))
    return files


@dataclass(frozen=True)
class PagesTable:
    """A committed pages folder, validated by :func:`read_pages_dir`."""

    uri: str
    """The folder (path or URI)."""
    stats: PagesStats
    """Its ``_stats.json``."""
    files: list[str] = field(default_factory=list)
    """URIs of its Parquet part files, in order."""
    stats_sha256: str = ""
    """Hex sha256 of the ``_stats.json`` bytes (recorded by the shards manifest)."""
    ok_rows: str = "status = 'ok' AND text IS NOT NULL"
    """Spark SQL filter of the rows that go on to featurise (a curated folder's also
    requires ``curate_status = 'ok'``)."""


def read_pages_dir(uri: str) -> PagesTable:
    """Validate a committed ``pages/`` (or ``curated/``) folder; return its stats and
    part-file URIs. A curated folder (:mod:`pipeline.contracts.curated`) gives its input
    pages' stats, its own files and the ``ok_rows`` filter of curated ``ok`` rows.

    The part files are those ``_stats.json`` lists (never a directory listing), each
    checked to carry :data:`PAGES_SCHEMA`.

    Raises:
        PagesError: no folder; no ``_SUCCESS`` (the parse stage did not finish); a folder
            of the old layout (``stats.json``: written before sidecars started with
            ``_``); no or foreign ``_stats.json``; a listed file missing, not Parquet, or
            of another schema.
    """
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise PagesError(f"pages folder {uri} does not exist; run `pipeline parse` first")
    if fs.get_file_info(f"{path}/_SUCCESS").type != pafs.FileType.File:
        raise PagesError(
            f"{uri} has no _SUCCESS: the parse stage did not finish there; re-run `pipeline parse`"
        )
    where = f"{uri.rstrip('/')}/{STATS_FILE}"
    try:
        with fs.open_input_stream(f"{path}/{STATS_FILE}", compression=None) as f:
            raw = f.read()
    except FileNotFoundError:
        if fs.get_file_info(f"{path}/stats.json").type == pafs.FileType.File:
            raise PagesError(
                f"{uri} is a pages folder of the old layout (stats.json beside the data, "
                f"format version 1); this version reads {STATS_FILE}: re-run `pipeline parse` "
                "into a new folder"
            ) from None
        raise PagesError(f"{where} not found: not a pages folder") from None
    from pipeline.contracts import curated  # a curated folder reads as a pages table

    if curated.is_curated_stats(raw):
        ct = curated.read_curated_dir(uri)
        stats = curated.pages_stats_of(ct)
        return PagesTable(uri, stats, ct.files, ct.stats_sha256, curated.OK_ROWS)
    stats = PagesStats.from_json(raw, where)
    files = part_files(fs, path, uri, stats.files, PAGES_SCHEMA, "the pages contract")
    return PagesTable(uri, stats, files, hashlib.sha256(raw).hexdigest())
