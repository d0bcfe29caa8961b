"""ShardDataset on small shards built in tmp_path: order, rank slices, resume, verification."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.shards import reader
from pipeline.shards.format import ShardError
from pipeline.shards.reader import ShardDataset, epoch_permutation
from tests.support.shards import BLOCK, L, make_shards, rows_for


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    return make_shards(tmp_path / "shards")


def row_ids(x: torch.Tensor, base: int = 0) -> list[int]:
    """Global row ids of a batch built by :func:`rows_for`."""
    return ((x[:, 0] - base) // L).tolist()


def run(ds: ShardDataset, n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [ds.next_batch() for _ in range(n)]


def test_shapes_dtypes_and_shift(shards: Path) -> None:
    ds = ShardDataset(str(shards), global_batch=8, world_size=2, rank=1)
    assert (ds.local_batch, ds.block_size, ds.rows, ds.batches_per_epoch) == (4, BLOCK, 50, 6)
    x, y = ds.next_batch()
    assert x.shape == y.shape == (4, BLOCK)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    for row, xs, ys in zip(row_ids(x), x, y, strict=True):  # the stored row, not another
        full = torch.from_numpy(rows_for(row, 1)[0])
        assert torch.equal(xs, full[:-1]) and torch.equal(ys, full[1:])
    assert (ds.epoch, ds.batch) == (0, 1)
    assert ds.wait_seconds() > 0


def test_multi_chunk_shard_and_uint32(tmp_path: Path) -> None:
    base = 70_000  # above uint16
    root = make_shards(tmp_path / "s", train=(1100, 5), dtype="uint32", base=base)
    ds = ShardDataset(str(root), global_batch=64)
    want = np.arange(1105)
    idx = np.array([1104, 0, 1023, 1024, 1099, 1100, 5, 1025])
    got = ds.rows_at(idx)
    assert got.dtype == np.int64
    assert np.array_equal(got, rows_for(0, 1105, base)[want[idx]])
    x, _ = ds.next_batch()
    assert int(x.min()) >= base


@pytest.mark.parametrize("world_size", [2, 4])
def test_rank_slices_concatenate_to_world_size_1(shards: Path, world_size: int) -> None:
    ref = run(ShardDataset(str(shards), global_batch=8, seed=3), 15)  # 6 per epoch: 2 epochs
    ranks = [
        run(ShardDataset(str(shards), global_batch=8, seed=3, rank=r, world_size=world_size), 15)
        for r in range(world_size)
    ]
    for b, (x, y) in enumerate(ref):
        assert torch.equal(torch.cat([ranks[r][b][0] for r in range(world_size)]), x)
        assert torch.equal(torch.cat([ranks[r][b][1] for r in range(world_size)]), y)
    epoch0 = [row_ids(x) for x, _ in ref[:6]]
    epoch1 = [row_ids(x) for x, _ in ref[6:12]]
    assert epoch0 != epoch1  # a new permutation after the boundary


def test_every_row_once_per_epoch(shards: Path) -> None:
    for world_size in (1, 2, 5):
        ranks = [
            ShardDataset(str(shards), global_batch=10, rank=r, world_size=world_size, seed=7)
            for r in range(world_size)
        ]
        for epoch in range(2):
            seen = [i for _ in range(5) for ds in ranks for i in row_ids(ds.next_batch()[0])]
            assert sorted(seen) == list(range(50)), (world_size, epoch)
            assert all((ds.epoch, ds.batch) == (epoch + 1, 0) for ds in ranks)


def test_partial_last_batch_skipped(shards: Path) -> None:
    ds = ShardDataset(str(shards), global_batch=16)  # 50 rows: 3 batches, 2 rows unused
    seen = [i for x, _ in run(ds, 3) for i in row_ids(x)]
    assert len(set(seen)) == 48
    assert sorted(set(range(50)) - set(seen)) == sorted(epoch_permutation(50, 0, 0)[48:])
    assert (ds.epoch, ds.batch) == (1, 0)


def test_seeds(shards: Path) -> None:
    def ids(seed: int) -> list[list[int]]:
        return [row_ids(x) for x, _ in run(ShardDataset(str(shards), global_batch=8, seed=seed), 6)]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)
    assert not np.array_equal(epoch_permutation(50, 1, 0), epoch_permutation(50, 1, 1))


def test_state_round_trip_same_world_size(shards: Path) -> None:
    ref = run(ShardDataset(str(shards), global_batch=8, seed=5), 14)
    ds = ShardDataset(str(shards), global_batch=8, seed=5)
    run(ds, 4)
    state = json.loads(json.dumps(ds.state_dict()))  # JSON-serialisable
    assert state == {
        "epoch": 0,
        "batch": 4,
        "seed": 5,
        "global_batch": 8,
        "rows": 50,
        "split": "train",
        "manifest_sha256": ds.manifest.sha256,
    }
    resumed = ShardDataset(str(shards), global_batch=8, seed=99)  # saved seed wins
    resumed.load_state_dict(state)
    for (x, y), (rx, ry) in zip(run(resumed, 10), ref[4:], strict=True):
        assert torch.equal(x, rx) and torch.equal(y, ry)


def test_state_saved_at_two_ranks_loads_at_one_and_four(shards: Path) -> None:
    ref = run(ShardDataset(str(shards), global_batch=8, seed=11), 16)
    ranks = [
        ShardDataset(str(shards), global_batch=8, seed=11, rank=r, world_size=2) for r in (0, 1)
    ]
    for _ in range(9):  # across the epoch boundary (6 per epoch)
        for ds in ranks:
            ds.next_batch()
    state = ranks[0].state_dict()
    assert state == ranks[1].state_dict()  # no rank in it
    one = ShardDataset(str(shards), global_batch=8)
    one.load_state_dict(state)
    assert (one.epoch, one.batch) == (1, 3)
    for (x, _), (rx, _) in zip(run(one, 7), ref[9:], strict=True):
        assert torch.equal(x, rx)
    four = [ShardDataset(str(shards), global_batch=8, rank=r, world_size=4) for r in range(4)]
    for ds in four:
        ds.load_state_dict(state)
    for b in range(9, 16):
        assert torch.equal(torch.cat([ds.next_batch()[0] for ds in four]), ref[b][0])


def test_load_state_rejects_other_data(shards: Path, tmp_path: Path) -> None:
    state = ShardDataset(str(shards), global_batch=8).state_dict()
    other = make_shards(tmp_path / "other", code_version="other")  # same rows
    with pytest.raises(ShardError, match="manifest_sha256 .* differs"):
        ShardDataset(str(other), global_batch=8).load_state_dict(state)
    with pytest.raises(ShardError, match="global_batch 8 differs from this dataset's 10"):
        ShardDataset(str(shards), global_batch=10).load_state_dict(state)
    with pytest.raises(ShardError, match="split 'train' differs"):
        ShardDataset(str(shards), "val", global_batch=2).load_state_dict(state)
    with pytest.raises(ShardError, match="batch None is not an integer"):
        ShardDataset(str(shards), global_batch=8).load_state_dict({**state, "batch": None})
    bad = dict(state)
    del bad["batch"]
    with pytest.raises(ShardError, match="lacks batch"):
        ShardDataset(str(shards), global_batch=8).load_state_dict(bad)
    with pytest.raises(ShardError, match="exceeds"):
        ShardDataset(str(shards), global_batch=8).load_state_dict({**state, "batch": 7})
    end = ShardDataset(str(shards), global_batch=8)  # a cursor at the end of an epoch
    end.load_state_dict({**state, "batch": 6})
    assert (end.epoch, end.batch) == (1, 0)
    end.next_batch()


def corrupt_copy(shards: Path, dest: Path) -> Path:
    """A copy of ``shards`` with one token byte changed in train shard 1 (same size)."""
    shutil.copytree(shards, dest)
    path = dest / "train" / "part-00001-of-00003.arrow"
    data = bytearray(path.read_bytes())
    at = data.find(rows_for(20, 1).astype(np.uint16).tobytes())  # row 20: shard 1's 8th row
    assert at > 0
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    return dest


def test_sha256_mismatch_on_first_use(shards: Path, tmp_path: Path) -> None:
    bad = corrupt_copy(shards, tmp_path / "bad")
    ds = ShardDataset(str(bad), global_batch=50)  # lazy: opening the dataset is fine
    with pytest.raises(ShardError, match="sha256 .* differs from the manifest"):
        ds.next_batch()
    skip = ShardDataset(str(bad), global_batch=50, verify=False)
    x, _ = skip.next_batch()
    assert sorted(row_ids(x)) != list(range(50))  # the corrupt row went through unchecked


def test_verify_once_per_shard_per_process(shards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = reader.verify_shard
    monkeypatch.setattr(reader, "verify_shard", lambda m, s: calls.append(s.path) or real(m, s))
    for _ in range(2):
        ds = ShardDataset(str(shards), global_batch=50)
        run(ds, 3)
    assert sorted(calls) == [f"train/part-{i:05d}-of-00003.arrow" for i in range(3)]


def test_path_escaping_folder_rejected(shards: Path) -> None:
    manifest = json.loads((shards / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"][0]["path"] = "../x.arrow"
    (shards / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="inside the dataset folder"):
        ShardDataset(str(shards), global_batch=8)


def test_block_size_crop(shards: Path) -> None:
    ds = ShardDataset(str(shards), global_batch=8, block_size=5)
    x, y = ds.next_batch()
    assert x.shape == y.shape == (8, 5)
    full = torch.from_numpy(rows_for(0, 50))[row_ids(x)]
    assert torch.equal(x, full[:, :5]) and torch.equal(y, full[:, 1:6])
    with pytest.raises(
        ShardError,
        match=r"block_size 9 exceeds the shards' 8; re-run featurise "
        r"with featurise.block_size=9",
    ):
        ShardDataset(str(shards), global_batch=8, block_size=9)


@pytest.mark.parametrize(
    ("rows", "per_rank", "world_size", "max_batches", "steps", "per"),
    [
        (10, 2, 2, 20, 2, 2),  # rows // (per_rank*W) = 2
        (10, 2, 2, 1, 1, 2),  # capped by max_batches
        (10, 4, 3, 5, 1, 3),  # 10 // 12 = 0: one step of 10 // 3 rows
        (10, 1, 4, 0, 0, 1),  # max_batches 0: nothing
        (3, 1, 4, 5, 0, 1),  # fewer rows than ranks: nothing anywhere
    ],
)
def test_eval_batches(
    tmp_path: Path,
    rows: int,
    per_rank: int,
    world_size: int,
    max_batches: int,
    steps: int,
    per: int,
) -> None:
    root = make_shards(tmp_path / "s", train=(40,), val=(rows,))
    ranks = [
        ShardDataset(str(root), "val", global_batch=world_size, rank=r, world_size=world_size)
        if rows >= world_size
        else None
        for r in range(world_size)
    ]
    if ranks[0] is None:  # the dataset itself refuses a split smaller than one global batch
        with pytest.raises(ShardError, match=f"has {rows} rows"):
            ShardDataset(str(root), "val", global_batch=world_size, world_size=world_size)
        return
    before = [ds.state_dict() for ds in ranks]
    out = [list(ds.eval_batches(per_rank, max_batches)) for ds in ranks]
    assert [len(o) for o in out] == [steps] * world_size
    for i in range(steps):
        x = torch.cat([out[r][i][0] for r in range(world_size)])
        assert x.shape == (per * world_size, BLOCK)
        assert row_ids(x) == list(range(i * per * world_size, (i + 1) * per * world_size))
    assert [ds.state_dict() for ds in ranks] == before


def test_eval_does_not_move_training_cursor(shards: Path) -> None:
    ref = run(ShardDataset(str(shards), global_batch=8), 3)
    ds = ShardDataset(str(shards), global_batch=8)
    ds.next_batch()
    assert len(list(ds.eval_batches(4, 3))) == 3
    x, _ = ds.next_batch()
    assert torch.equal(x, ref[1][0])
    with pytest.raises(ShardError, match="per_rank must be >= 1"):
        ds.eval_batches(0, 3)


def test_file_uri_root(shards: Path) -> None:
    a = run(ShardDataset(f"file://{shards}", global_batch=8), 2)
    b = run(ShardDataset(str(shards), global_batch=8), 2)
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))


def test_constructor_errors(shards: Path, tmp_path: Path) -> None:
    root = str(shards)
    with pytest.raises(
        ShardError,
        match="global_batch 10 is not a positive multiple of "
        "world_size 4; set train.global_batch to a multiple of 4",
    ):
        ShardDataset(root, global_batch=10, world_size=4)
    with pytest.raises(
        ShardError,
        match="has 50 rows, fewer than one global batch of 64; "
        "lower train.global_batch to at most 50",
    ):
        ShardDataset(root, global_batch=64)
    with pytest.raises(ShardError, match=r"rank 2 is not in \[0, 2\)"):
        ShardDataset(root, global_batch=8, rank=2, world_size=2)
    with pytest.raises(ShardError, match="no such split"):
        ShardDataset(root, "test", global_batch=8)
    empty = make_shards(tmp_path / "empty", val=())
    with pytest.raises(ShardError, match="'val' has no rows"):
        ShardDataset(str(empty), "val", global_batch=1)
    (shards / "_SUCCESS").unlink()
    with pytest.raises(ShardError, match="no _SUCCESS"):
        ShardDataset(root, global_batch=8)
