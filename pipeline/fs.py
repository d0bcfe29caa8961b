"""Local paths and filesystem URIs, through ``pyarrow.fs`` (shared by every stage)."""

from __future__ import annotations

import os

import pyarrow.fs as pafs


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """Return ``(filesystem, path)`` for a local path or a URI (``s3a://`` → ``s3://``)."""
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
