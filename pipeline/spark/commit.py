"""Driver-side commit of a stage's output folder: stage, then rename, then ``_SUCCESS``.

Tasks write into a hidden staging folder beside the output; only when the body of
:class:`StagedOutput` succeeded is the staging folder completed with the ownership marker
(:data:`pipeline.outputs.MARKER`, listing every file written) and ``_SUCCESS``, and
renamed into place. A job killed half-way leaves at most a hidden staging folder, which
no stage reads and which the next run of the same stage removes (its marker proves it).

An existing output is replaced only when :func:`pipeline.outputs.claim_output` proved it
is a previous output of the same stage and ``overwrite`` was given: it is moved aside,
the new folder renamed into place, the files found there that the old marker does not
list moved back (and named in a warning), and only the old output's own files deleted.

Object stores (``s3://``/``s3a://``, ``gs://``) cannot rename a folder. There the output
is published by server-side copies instead, the way Hadoop's S3A committers end: the old
output's ``_SUCCESS`` is deleted first (so no reader takes a mix of old and new), then its
own files, then the marker (state ``partial``) and every staged file are copied to their
final keys and ``_SUCCESS`` is written last. Readers require ``_SUCCESS``
(:func:`pipeline.wiki.pages.read_pages_dir`, :func:`pipeline.shards.format.load_manifest`),
so a publish killed half-way leaves an output that every stage refuses until the stage is
re-run (with ``overwrite``: the partial output is provably the stage's); unlike on a
filesystem, the previous output is gone by then.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid
from typing import Any

import pyarrow.fs as pafs

from pipeline import outputs
from pipeline.errors import OutputError
from pipeline.fs import filesystem, join_uri

SUCCESS = "_SUCCESS"
OBJECT_STORES = frozenset({"s3", "gcs"})  # pyarrow FileSystem.type_name values


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class StagedOutput:
    """Context manager publishing ``out`` only if its body succeeds.

    Args:
        out: the output folder (path or URI).
        stage: the stage writing it (``parse``, ``featurise``, ``report``); recorded in the
            marker and compared with an existing output's.
        overwrite: replace a previous output of the same stage.
        inputs: paths and URIs the stage reads; an output overlapping one is refused.

    Raises (on construction, before any work):
        pipeline.errors.OutputError: see :func:`pipeline.outputs.claim_output` and
            :func:`pipeline.outputs.check_not_input`.

    Attributes:
        uri: URI of the staging folder; write everything there.
    """

    def __init__(
        self, out: str, stage: str, *, overwrite: bool = False, inputs: tuple[str, ...] = ()
    ) -> None:
        self.out = out.rstrip("/") or out
        self.stage, self.overwrite = stage, overwrite
        outputs.check_not_input(stage, self.out, inputs)
        self.claim = outputs.claim_output(stage, self.out, overwrite=overwrite)
        self.fs, self.path = filesystem(self.out)
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.path = os.path.realpath(self.path)
        parent, name = self.path.rsplit("/", 1)
        self._parent, self._name = parent or "/", name
        token = uuid.uuid4().hex[:12]
        self.staging = f"{parent}/.{name}.staging-{token}"
        self._old = f"{parent}/.{name}.old-{token}"
        self.uri = join_uri(self.out, self.staging)
        self.removed_leftovers: list[str] = []

    def __enter__(self) -> StagedOutput:
        self._remove_leftovers()
        self.fs.create_dir(self.staging, recursive=True)
        outputs.write_marker(self.fs, self.staging, outputs.staging_record(self.stage, self.path))
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            # The original error matters; a leftover is removed by the next run.
            with contextlib.suppress(OSError):
                self.fs.delete_dir(self.staging)
            return
        try:
            self._publish()
        except BaseException:
            if self.fs.get_file_info(self.staging).type == pafs.FileType.Directory:
                with contextlib.suppress(OSError):
                    self.fs.delete_dir(self.staging)
            raise

    def _remove_leftovers(self) -> None:
        """Remove staging folders of earlier killed runs of this stage and output."""
        for path in outputs.stale_leftovers(self.fs, self._parent, self._name, self.stage):
            if path.rsplit("/", 1)[-1].startswith(f".{self._name}.staging-"):
                self.fs.delete_dir(path)
            else:  # an old output moved aside by a killed publish: only its own files
                marker = outputs.read_marker(self.fs, path)
                left = outputs.remove_owned(self.fs, path, marker) if marker else ["?"]
                if left:
                    _warn(
                        f"pipeline {self.stage}: warning: kept {path}: it holds files this "
                        f"tool did not write ({', '.join(left[:3])})"
                    )
                    continue
                if self.fs.get_file_info(path).type == pafs.FileType.Directory:
                    self.fs.delete_dir(path)
            self.removed_leftovers.append(path)
            _warn(f"pipeline {self.stage}: removed {path}, left by an earlier killed run")

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
        """Names of the files in the staging folder (the marker left out)."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.staging))
        return sorted(i.base_name for i in infos if i.base_name != outputs.MARKER)

    @property
    def object_store(self) -> bool:
        """True on filesystems without folder renames (S3, GCS): publish by copying."""
        return self.fs.type_name in OBJECT_STORES

    def _staged_files(self) -> list[str]:
        infos = self.fs.get_file_info(pafs.FileSelector(self.staging, recursive=True))
        return sorted(
            i.path[len(self.staging) + 1 :] for i in infos if i.type == pafs.FileType.File
        )

    def _publish(self) -> None:
        # Checked again: the path may have changed while the job ran.
        claim = outputs.claim_output(self.stage, self.out, overwrite=self.overwrite)
        self.write_bytes(SUCCESS, b"")
        files = self._staged_files()
        record = outputs.marker_record(self.stage, files)
        if self.object_store:
            self._publish_by_copy(claim, record)
            return
        outputs.write_marker(self.fs, self.staging, record)
        if not claim.exists:
            self.fs.move(self.staging, self.path)
            return
        self.fs.move(self.path, self._old)
        # The old output's marker stays in the aside folder (proof for a later clean-up).
        self.fs.move(self.staging, self.path)
        kept_aside = []
        for rel in claim.foreign:
            src, dst = f"{self._old}/{rel}", f"{self.path}/{rel}"
            if self.fs.get_file_info(dst).type != pafs.FileType.NotFound:
                kept_aside.append(rel)  # a new file has its name: it stays aside
                continue
            self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
            self.fs.move(src, dst)
        if claim.foreign:
            more = len(claim.foreign) - 5
            _warn(
                f"pipeline {self.stage}: warning: {self.out} held files this tool did not "
                f"write; kept them in place: {', '.join(claim.foreign[:5])}"
                + (f" and {more} more" if more > 0 else "")
            )
        previous = claim.previous or outputs.marker_record(self.stage, [])
        left = outputs.remove_owned(self.fs, self._old, previous)
        if left:
            _warn(
                f"pipeline {self.stage}: warning: kept {self._old}: files of yours whose "
                f"names the new output uses: {', '.join(kept_aside or left)}"
            )
        elif self.fs.get_file_info(self._old).type == pafs.FileType.Directory:
            self.fs.delete_dir(self._old)

    def _publish_by_copy(self, claim: outputs.Claim, record: dict[str, Any]) -> None:
        files = [f for f in record["files"] if f not in (outputs.MARKER, SUCCESS)]
        if claim.exists and claim.previous is not None:
            success = f"{self.path}/{SUCCESS}"
            if self.fs.get_file_info(success).type == pafs.FileType.File:
                self.fs.delete_file(success)  # first: the old output stops being valid
            outputs.remove_owned(self.fs, self.path, claim.previous)
        # The marker first (state partial): a publish cut off half-way is still provably
        # this stage's output, so a re-run with overwrite may replace it.
        partial = dict(record, state="partial")
        outputs.write_marker(self.fs, self.path, partial)
        for rel in files:
            self.fs.copy_file(f"{self.staging}/{rel}", f"{self.path}/{rel}")
        outputs.write_marker(self.fs, self.path, record)
        self._write(f"{self.path}/{SUCCESS}", b"")
        self.fs.delete_dir(self.staging)

    def _write(self, path: str, data: bytes) -> None:
        with self.fs.open_output_stream(path, compression=None) as f:
            f.write(data)


__all__ = ["SUCCESS", "StagedOutput", "OutputError"]
