"""Driver-side commit of a stage's output folder: stage, then rename, then ``_SUCCESS``.

Tasks write into a hidden staging folder beside the output; only when the body of
:class:`StagedOutput` succeeded is the staging folder completed with ``_SUCCESS`` and
renamed into place (an existing output is moved aside first and deleted after). A job
killed half-way leaves at most a hidden staging folder, which no stage reads.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pyarrow.fs as pafs

from pipeline.fs import filesystem, join_uri

SUCCESS = "_SUCCESS"


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
        with self.fs.open_output_stream(f"{self.staging}/{name}", compression=None) as f:
            f.write(data)

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

    def _publish(self) -> None:
        self.write_bytes(SUCCESS, b"")
        existed = self.fs.get_file_info(self.path).type != pafs.FileType.NotFound
        if existed:
            self.fs.move(self.path, self._old)
        self.fs.move(self.staging, self.path)
        if existed:
            self.fs.delete_dir(self._old)
