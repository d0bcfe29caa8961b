"""Local paths and filesystem URIs, through ``pyarrow.fs`` (shared by every stage), and the
small file utilities every module uses: atomic write, tolerant JSON read, file digest.

``pyarrow.fs`` is imported where it is used, so that modules needing only the local-file
helpers (the config, the CLI) do not load pyarrow.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Read size for files on remote filesystems: an object store is asked for few, big ranges.
REMOTE_READ_BYTES = 8 << 20


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or a URI (``s3a://`` → ``s3://``)."""
    import pyarrow.fs as pafs

    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    if uri.startswith("s3a://"):
        uri = "s3://" + uri[len("s3a://") :]
    return pafs.FileSystem.from_uri(uri)


def join_uri(base: str, path: str) -> str:
    """Rebuild a URI for ``path`` on the same filesystem as ``base``."""
    if "://" not in base:
        return path
    scheme, rest = base.split("://", 1)
    if scheme == "file":
        return "file://" + path
    authority = rest.split("/", 1)[0]
    if scheme in ("s3", "s3a", "gs"):
        return f"{scheme}://{path}"  # pyarrow's path includes the bucket
    return f"{scheme}://{authority}{path}"


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` (a ``str`` as UTF-8) to the local file ``path`` atomically; return it.

    The bytes go to a hidden temporary file beside ``path`` (``.NAME.tmp-…``, a name that
    table readers skip), which :func:`os.replace` then renames over ``path``: a reader sees
    the old file or the new one, never a part of either. The temporary file is removed when
    the write fails. The folder must exist.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        with open(tmp, "xb") as f:
            f.write(raw)
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def read_json_or_none(
    path: str | os.PathLike[str], fs: pafs.FileSystem | None = None
) -> dict[str, Any] | None:
    """The JSON object in file ``path``, or None when the file is missing or unreadable, or
    holds something else (not UTF-8, not JSON, JSON but not an object).

    Args:
        path: the file; a local path unless ``fs`` is given.
        fs: a pyarrow filesystem to read it through (default: the local filesystem).
    """
    try:
        if fs is None:
            raw = Path(path).read_bytes()
        else:
            with fs.open_input_stream(os.fspath(path), compression=None) as f:
                raw = f.read()
        data = json.loads(raw)
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


def file_digest(
    path: str | os.PathLike[str],
    digest: str | Callable[[], hashlib._Hash] = "sha256",
    fs: pafs.FileSystem | None = None,
) -> hashlib._Hash:
    """The hash object of the whole file ``path`` (:func:`hashlib.file_digest`; memory is
    bounded by its read buffer).

    Args:
        path: the file; a local path unless ``fs`` is a remote filesystem.
        digest: an algorithm name (``"sha256"``) or a callable making the hash object.
        fs: a pyarrow filesystem to read through (default: local); a remote one is read
            in :data:`REMOTE_READ_BYTES` pieces.

    Raises:
        OSError: the file is missing or cannot be read.
    """
    if fs is not None:
        import pyarrow.fs as pafs

        if not isinstance(fs, pafs.LocalFileSystem):
            with fs.open_input_stream(
                os.fspath(path), compression=None, buffer_size=REMOTE_READ_BYTES
            ) as f:
                return hashlib.file_digest(f, digest)
    with open(path, "rb") as f:
        return hashlib.file_digest(f, digest)
