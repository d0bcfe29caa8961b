"""Finding dump files, pairing multistream dumps with their index, and planning tasks.

Paths are local paths or URIs that ``pyarrow.fs`` opens (``file://``, ``hdfs://``,
``s3://``; ``s3a://`` is read as ``s3://``). A task is a plain dict, so it can be shipped
to Spark executors as is:

``{"task": i, "source": uri, "name": basename, "kind": "whole" | "range" | "bz2_split" |
"xml_split", "start": byte,
"end": byte | None, "expected_pages": int | None, "siteinfo": {...} | None}``

Multistream format (https://meta.wikimedia.org/wiki/Data_dumps/Dump_format): the dump is
a concatenation of independent bz2 streams: the ``<mediawiki><siteinfo>`` header, streams
of (usually 100) ``<page>``s, and the ``</mediawiki>`` footer. The index is bz2 text with
one ``offset:page_id:title`` line per page, ``offset`` being the byte where the page's
stream starts.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import IO, Any, cast

import pyarrow.fs as pafs

from pipeline.fs import filesystem, join_uri
from pipeline.wiki import docsources, split
from pipeline.wiki.xmlpages import DumpError, PageReader, SiteInfo

DUMP_SUFFIXES = (".xml", ".xml.bz2", ".xml.gz", ".bz2", ".gz", ".7z")
_MULTISTREAM = re.compile(r"multistream(\d*)\.xml")
_INDEX = re.compile(r"multistream-index(\d*)\.txt")
BZ2_MAGIC = b"BZh"


def is_index(name: str) -> bool:
    """True for a multistream index file name."""
    return bool(_INDEX.search(name))


def _is_dump(name: str) -> bool:
    """A dump or a text corpus file (:mod:`pipeline.wiki.docsources`), not an index."""
    return name.endswith(DUMP_SUFFIXES + docsources.SUFFIXES) and not is_index(name)


def expand_inputs(inputs: list[str]) -> list[tuple[str, int]]:
    """Resolve files, folders and globs into ``[(uri, size in bytes)]``, sorted, unique.

    A folder contributes its dump files (recursively); index files are not dumps.

    Raises:
        DumpError: no inputs given, an input that does not exist, or a folder/glob that
            matches no dump file.
    """
    if not inputs:
        raise DumpError("parse.input", "no input given; pass --input DUMP (file, folder or glob)")
    found: dict[str, int] = {}
    for item in inputs:
        fs, path = filesystem(item)
        if any(c in path for c in "*?["):
            parent, pattern = path.rsplit("/", 1)
            infos = fs.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
            hits = [i for i in infos if i.is_file and fnmatch.fnmatch(i.base_name, pattern)]
            hits = [i for i in hits if _is_dump(i.base_name)]
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise DumpError(item, "input not found; check the path or URI")
            if info.type == pafs.FileType.Directory:
                infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
                hits = [i for i in infos if i.is_file and _is_dump(i.base_name)]
            else:
                hits = [info]
        if not hits:
            suffixes = ", ".join(DUMP_SUFFIXES + docsources.SUFFIXES)
            raise DumpError(item, f"no dump or corpus files ({suffixes}) match")
        for h in hits:
            found[join_uri(item, h.path)] = h.size
    return sorted(found.items())


def index_for(uri: str) -> str | None:
    """Return the URI of the multistream index beside ``uri`` if it exists, else None."""
    name = uri.rsplit("/", 1)[-1]
    if not _MULTISTREAM.search(name):
        return None
    index_name = _MULTISTREAM.sub(lambda m: f"multistream-index{m.group(1)}.txt", name, count=1)
    index_uri = uri[: len(uri) - len(name)] + index_name
    fs, path = filesystem(index_uri)
    return index_uri if fs.get_file_info(path).is_file else None


def read_index(index_uri: str) -> list[tuple[int, int]]:
    """Return ``[(stream offset, pages in that stream)]`` in file order from an index.

    Raises:
        DumpError: unreadable file or a line that is not ``offset:page_id:title``.
    """
    fs, path = filesystem(index_uri)
    counts: dict[int, int] = {}
    try:
        with (
            fs.open_input_stream(path, compression=None) as raw,
            bz2.open(raw, "rt", encoding="utf-8") as f,
        ):
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                offset, _, rest = line.partition(":")
                if not offset.isdigit() or ":" not in rest:
                    raise DumpError(
                        index_uri, f"not an 'offset:page_id:title' line: {line!r}", f"line {lineno}"
                    )
                counts[int(offset)] = counts.get(int(offset), 0) + 1
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise DumpError(index_uri, f"unreadable multistream index: {e}") from None
    return sorted(counts.items())


def read_header(uri: str, end: int) -> SiteInfo:
    """Parse the header stream ``[0, end)`` of a multistream dump for its ``<siteinfo>``."""
    fs, path = filesystem(uri)
    with fs.open_input_file(path) as f:
        data = bz2.decompress(f.read_at(end, 0))
    reader = PageReader(uri)
    reader.feed(data)  # the header stops before </mediawiki>: no close()
    return reader.siteinfo


def _check_offsets(uri: str, size: int, offsets: list[int], index_uri: str) -> None:
    """Every stream offset of the index must be inside the dump and start a bz2 stream.

    All offsets are checked on local files; at most 200 evenly spread ones elsewhere.
    """
    fs, path = filesystem(uri)
    step = 1 if isinstance(fs, pafs.LocalFileSystem) else max(1, len(offsets) // 200)
    sample = sorted(set(offsets[::step] + offsets[-1:]))
    with fs.open_input_file(path) as f:
        for off in sample:
            if off >= size or f.read_at(3, off) != BZ2_MAGIC:
                raise DumpError(
                    index_uri,
                    f"does not match its dump {uri}: no bz2 stream starts at byte {off} "
                    f"(dump size {size}); use the index published with this dump",
                )


def plan_tasks(
    files: list[tuple[str, int]],
    split_bytes: int,
    *,
    text_field: str = "text",
    id_field: str = "id",
) -> list[dict[str, Any]]:
    """Split the inputs into tasks; multistream dumps with an index by stream offsets.

    Single-stream ``.bz2`` and plain ``.xml`` files larger than ``split_bytes`` are split
    by :func:`pipeline.wiki.split.plan_split` (bz2 block boundaries, byte ranges);
    ``.gz`` files are read by one task each (a gzip member cannot be entered mid-way
    without a decompression index built by reading it all).

    Args:
        files: ``[(uri, size)]`` from :func:`expand_inputs`.
        split_bytes: target compressed bytes per task.
        text_field, id_field: fields of JSON Lines / Parquet corpus files
            (:func:`pipeline.wiki.docsources.plan_documents`).

    Raises:
        DumpError: a ``.7z`` dump, or an index that is unreadable or does not match.
    """
    tasks: list[dict[str, Any]] = []
    for uri, size in files:
        name = uri.rsplit("/", 1)[-1]
        if name.endswith(".7z"):
            raise DumpError(
                uri,
                "7z dumps are not read directly (a 7z member cannot be streamed in bounded "
                f"memory); convert it first: 7z x -so '{name}' | bzip2 > "
                f"'{name[:-3]}.bz2' and parse the .bz2",
            )
        if docsources.is_document_file(name):
            tasks += docsources.plan_documents(uri, name, size, split_bytes, text_field, id_field)
            continue
        index = index_for(uri) if name.endswith(".bz2") else None
        if index is None:
            parts = split.plan_split(uri, name, size, split_bytes)
            tasks += parts or [_task(uri, name, "whole", 0, None, None, None)]
            continue
        streams = read_index(index)
        if not streams:
            raise DumpError(index, "the multistream index lists no pages")
        _check_offsets(uri, size, [o for o, _ in streams], index)
        siteinfo = asdict(read_header(uri, streams[0][0]))
        start, pages = streams[0][0], 0
        for i, (_, count) in enumerate(streams):
            pages += count
            nxt = streams[i + 1][0] if i + 1 < len(streams) else None
            if nxt is None or nxt - start >= split_bytes:
                tasks.append(_task(uri, name, "range", start, nxt, pages, siteinfo))
                start, pages = nxt or 0, 0
    for i, t in enumerate(tasks):
        t["task"] = i
    return tasks


def _task(uri, name, kind, start, end, expected, siteinfo) -> dict[str, Any]:
    return {
        "task": -1,
        "source": uri,
        "name": name,
        "kind": kind,
        "start": start,
        "end": end,
        "expected_pages": expected,
        "siteinfo": siteinfo,
    }


class _Range(io.RawIOBase):
    """A read-only view of bytes ``[start, end)`` of a seekable file (end None = EOF)."""

    def __init__(self, f: Any, start: int, end: int | None) -> None:
        self._f, self._pos, self._end = f, start, end
        f.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = len(b) if self._end is None else min(len(b), self._end - self._pos)
        if n <= 0:
            return 0
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos


@contextmanager
def open_task(task: dict[str, Any]) -> Iterator[tuple[IO[bytes], Any]]:
    """Context manager giving ``(decompressed binary stream, compressed position fn)``."""
    fs, path = filesystem(task["source"])
    with fs.open_input_file(path) as raw:
        name = task["name"]
        if task["kind"] in ("bz2_split", "xml_split"):
            stream = split.SplitStream(raw, raw.size(), task)
            yield cast(IO[bytes], stream), stream.tell
        elif task["kind"] == "range":
            view = _Range(raw, task["start"], task["end"])
            with bz2.BZ2File(view) as f:
                yield f, view.tell
        elif name.endswith(".bz2"):
            with bz2.BZ2File(raw) as f:
                yield f, raw.tell
        elif name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as gz:
                yield cast(IO[bytes], gz), raw.tell
        else:
            yield raw, raw.tell
