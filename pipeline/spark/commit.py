"""Driver-side commit of a stage's output folder: stage, then rename, then ``_SUCCESS``.

Tasks write into a hidden staging folder beside the output; only when the body of
:class:`StagedOutput` succeeded is the staging folder completed with ``_SUCCESS`` and
renamed into place (an existing output is moved aside first and deleted after). A job
killed half-way leaves at most a hidden staging folder, which no stage reads.

Object stores (``s3://``/``s3a://``, ``gs://``) cannot rename a folder. There the output
is published by server-side copies instead, the way Hadoop's S3A committers end: the old
output's ``_SUCCESS`` is deleted first (so no reader takes a mix of old and new), then its
files, then every staged file is copied to its final key and ``_SUCCESS`` is written
last. Readers require ``_SUCCESS`` (:func:`pipeline.wiki.pages.read_pages_dir`,
:func:`pipeline.shards.format.load_manifest`), so a publish killed half-way leaves an
output that every stage refuses until the stage is re-run; unlike on a filesystem, the
previous output is gone by then.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow.fs as pafs

from pipeline.fs import filesystem, join_uri

SUCCESS = "_SUCCESS"
OBJECT_STORES = frozenset({"s3", "gcs"})  # pyarrow FileSystem.type_name values


class StagedOutput:
    """Context manager publishing ``out`` only if its body succeeds.

    Attributes:
        uri: URI of the staging folder; write everything there.
    """

    def __init__(self, out: str) -> None:
        self.out = out.rstrip("/")
        self.fs, self.path = filesystem(self.out)
        parent, name = self.path.rsplit("/", 1)
        token = uuid.uuid4().hex[:12]
        self.staging = f"{parent}/.{name}.staging-{token}"
        self._old = f"{parent}/.{name}.old-{token}"
        self.uri = join_uri(self.out, self.staging)

    def __enter__(self) -> StagedOutput:
        self.fs.create_dir(self.staging, recursive=True)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.fs.delete_dir(self.staging)
            return
        self._publish()

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write file ``name`` inside the staging folder."""
        self._write(f"{self.staging}/{name}", data)

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as indented, key-sorted JSON (stable bytes for the same content)."""
        text = json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        self.write_bytes(name, text.encode("utf-8"))

    def rename(self, src_name: str, dst_name: str) -> None:
        """Rename a file inside the staging folder."""
        self.fs.move(f"{self.staging}/{src_name}", f"{self.staging}/{dst_name}")

    def delete(self, name: str) -> None:
        """Delete a file inside the staging folder."""
        self.fs.delete_file(f"{self.staging}/{name}")

    def listdir(self) -> list[str]:
        """Names of the files in the staging folder."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.staging))
        return sorted(i.base_name for i in infos)

    @property
    def object_store(self) -> bool:
        """True on filesystems without folder renames (S3, GCS): publish by copying."""
        return self.fs.type_name in OBJECT_STORES

    def _publish(self) -> None:
        if self.object_store:
            self._publish_by_copy()
            return
        self.write_bytes(SUCCESS, b"")
        existed = self.fs.get_file_info(self.path).type != pafs.FileType.NotFound
        if existed:
            self.fs.move(self.path, self._old)
        self.fs.move(self.staging, self.path)
        if existed:
            self.fs.delete_dir(self._old)

    def _publish_by_copy(self) -> None:
        staged = self.fs.get_file_info(pafs.FileSelector(self.staging, recursive=True))
        files = [i.path for i in staged if i.type == pafs.FileType.File]
        if self.fs.get_file_info(self.path).type != pafs.FileType.NotFound:
            success = f"{self.path}/{SUCCESS}"
            if self.fs.get_file_info(success).type == pafs.FileType.File:
                self.fs.delete_file(success)  # first: the old output stops being valid
            self.fs.delete_dir_contents(self.path, missing_dir_ok=True)
        for src in files:
            self.fs.copy_file(src, f"{self.path}/{src[len(self.staging) + 1 :]}")
        self._write(f"{self.path}/{SUCCESS}", b"")
        self.fs.delete_dir(self.staging)

    def _write(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path, compression=None) as f:
            f.write(data)
