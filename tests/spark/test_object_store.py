"""Outputs on an object store: an S3 server (moto) on 127.0.0.1 stands in for S3. Folders
cannot be renamed there, so :class:`StagedOutput` publishes by copying; the parse stage
writes its pages to ``s3a://`` and the featurise stage's reader takes them back."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from pipeline.contracts.pages import PagesError, read_pages_dir
from pipeline.errors import OutputError
from pipeline.fs import filesystem
from pipeline.outputs import MARKER
from pipeline.spark.commit import SUCCESS, StagedOutput
from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config

EN = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
BUCKET = "pipeline-test"


@pytest.fixture(scope="module")
def s3(spark) -> Iterator[str]:
    """An empty bucket on a local S3 server; yields the endpoint URL.

    The AWS variables are set for this process and for Spark's Python workers
    (``SparkContext.environment``), as ``spark.executorEnv.*`` does on a cluster.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    workers = spark.sparkContext.environment
    saved_workers = {k: workers.get(k) for k in env}
    os.environ.update(env)
    workers.update(env)
    pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir(BUCKET)
    try:
        yield endpoint
    finally:
        for mapping, old in ((os.environ, saved), (workers, saved_workers)):
            for k, v in old.items():
                if v is None:
                    mapping.pop(k, None)
                else:
                    mapping[k] = v
        server.stop()


def keys(uri: str) -> list[str]:
    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(i.path[len(path) + 1 :] for i in infos if i.type == pafs.FileType.File)


def test_staged_output_publishes_by_copy_and_replaces_the_old_output(s3: str) -> None:
    out = f"s3a://{BUCKET}/staged/out"
    with StagedOutput(out, "parse") as stage:
        assert stage.object_store
        stage.write_bytes("a.txt", b"first")
        stage.write_bytes("old-only.txt", b"x")
    assert keys(out) == [SUCCESS, MARKER, "a.txt", "old-only.txt"]
    fs, path = filesystem(out)
    with fs.open_output_stream(f"{path}/notes.txt") as f:
        f.write(b"the user's")  # not ours: kept through the replacement
    with pytest.raises(OutputError, match="holds a previous parse output"):
        StagedOutput(out, "parse")
    with StagedOutput(out, "parse", overwrite=True) as stage:
        stage.write_bytes("part.tmp", b"second")
        stage.rename("part.tmp", "a.txt")
        stage.write_bytes("b.txt", b"new")
    assert keys(out) == [SUCCESS, MARKER, "a.txt", "b.txt", "notes.txt"]  # old-only.txt gone
    assert fs.open_input_stream(f"{path}/a.txt").read() == b"second"
    assert fs.open_input_stream(f"{path}/notes.txt").read() == b"the user's"
    assert keys(f"s3a://{BUCKET}/staged") == [f"out/{k}" for k in keys(out)]  # no staging left


def test_a_failed_body_leaves_the_published_output_untouched(s3: str) -> None:
    out = f"s3a://{BUCKET}/failed/out"
    with StagedOutput(out, "parse") as stage:
        stage.write_bytes("a.txt", b"kept")

    def failing_job() -> None:
        with StagedOutput(out, "parse", overwrite=True) as stage:
            stage.write_bytes("a.txt", b"lost")
            raise RuntimeError("task failed")

    with pytest.raises(RuntimeError, match="task failed"):
        failing_job()
    assert keys(f"s3a://{BUCKET}/failed") == ["out/_SUCCESS", f"out/{MARKER}", "out/a.txt"]
    fs, path = filesystem(out)
    assert fs.open_input_stream(f"{path}/a.txt").read() == b"kept"


def test_parse_stage_writes_pages_to_s3a(s3: str, wiki_data: Path, tmp_path: Path) -> None:
    local, remote = tmp_path / "pages", f"s3a://{BUCKET}/run/pages"
    for out in (str(local), remote):
        cfg = load_config(overrides=[f"parse.input=[{wiki_data / EN}]", f"parse.out={out}"])
        run_parse(cfg, progress=False)
    remote_table, local_table = read_pages_dir(remote), read_pages_dir(str(local))
    files_remote, files_local = remote_table.files, local_table.files
    assert remote_table.stats.totals == local_table.stats.totals
    assert remote_table.stats.totals.pages == 206  # SOURCES.md: 206 pages
    assert all(f.startswith(f"s3a://{BUCKET}/run/pages/part-") for f in files_remote)
    rows = [pq.read_table(filesystem(f)[1], filesystem=filesystem(f)[0]) for f in files_remote]
    local_rows = [pq.read_table(f) for f in files_local]
    assert [t.column("page_id").to_pylist() for t in rows] == [
        t.column("page_id").to_pylist() for t in local_rows
    ]
    assert not [k for k in keys(f"s3a://{BUCKET}/run") if "staging" in k]
    # a published folder whose _SUCCESS is missing (a publish cut off) is refused
    fs, path = filesystem(remote)
    fs.delete_file(f"{path}/{SUCCESS}")
    with pytest.raises(PagesError, match="has no _SUCCESS"):
        read_pages_dir(remote)


def test_training_reader_takes_shards_from_s3a(s3: str, tmp_path: Path) -> None:
    """Shards published to a bucket read back batch for batch as from a local folder."""
    from pipeline.shards.reader import ShardDataset
    from tests.support.shards import make_shards

    local = make_shards(tmp_path / "shards")
    remote = f"s3a://{BUCKET}/shards"
    fs, path = filesystem(remote)
    pafs.copy_files(
        str(local), path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )
    a = ShardDataset(str(local), global_batch=4, seed=3)
    b = ShardDataset(remote, global_batch=4, seed=3)
    for _ in range(12):  # more than an epoch of the 50 train rows
        (xa, ya), (xb, yb) = a.next_batch(), b.next_batch()
        assert xa.equal(xb) and ya.equal(yb)
