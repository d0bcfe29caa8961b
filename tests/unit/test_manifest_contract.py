"""The manifest contract: one writer, one validating reader, stable bytes (issue 13)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.contracts.manifest import FORMAT, ManifestError, ShardsManifest
from pipeline.shards import format as fmt
from tests.support.manifests import write_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    rows = np.arange(5 * 9, dtype=np.uint16).reshape(5, 9)
    return write_dataset(
        tmp_path / "shards", {"train": [rows, rows[:2]], "val": [rows[:1]]}, vocab_size=300
    )


def edited(root: Path, change) -> bytes:
    data = json.loads((root / fmt.MANIFEST).read_text())
    change(data)
    return json.dumps(data).encode()


def test_round_trip_gives_the_same_bytes_and_derived_counts(dataset: Path) -> None:
    raw = (dataset / fmt.MANIFEST).read_bytes()
    m = ShardsManifest.from_json(raw, "m")
    assert m.to_json() == raw
    assert m.splits["train"].sequences == 7 and m.splits["train"].tokens == 63
    assert m.totals()["sequences"] == 8 and m.row_length == 9
    data = json.loads(raw)
    assert data["format_version"] == 2 and data["totals"]["tokens"] == 72
    assert fmt.load_manifest(str(dataset)).sequences("train") == 7


def test_old_version_and_other_formats_are_named(dataset: Path) -> None:
    def v1(d: dict) -> None:
        d.pop("format_version")
        d["version"] = 1

    with pytest.raises(ManifestError, match="manifest version 1 is not supported .* version 2"):
        ShardsManifest.from_json(edited(dataset, v1), "old/manifest.json")
    with pytest.raises(ManifestError, match="not a shards manifest"):
        ShardsManifest.from_json(edited(dataset, lambda d: d.update(format="x")), "m")
    with pytest.raises(ManifestError, match="not JSON"):
        ShardsManifest.from_json(b"{", "m")
    (dataset / fmt.MANIFEST).write_bytes(edited(dataset, v1))
    with pytest.raises(fmt.ShardError, match="shards/manifest.json: shards manifest version 1"):
        fmt.load_manifest(str(dataset))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("eot_id"), "missing field 'eot_id'"),
        (lambda d: d.update(block_size="8"), "field 'block_size' must be int, got str"),
        (lambda d: d.update(vocab_size=True), "field 'vocab_size' must be int, got bool"),
        (
            lambda d: d["splits"]["train"]["shards"][0].update(tokens=40),
            "tokens 40 is not sequences 5 x row length 9",
        ),
        (
            lambda d: d["splits"]["train"]["shards"][1].pop("sha256"),
            r"splits.train.shards\[1\]: missing field 'sha256'",
        ),
        (lambda d: d["tokenizer"].update(path="/etc/passwd"), "not a plain relative path"),
        (lambda d: d.update(dtype="int8"), "dtype 'int8' is not uint16 or uint32"),
        (lambda d: d["splits"].update(test=d["splits"]["val"]), "unknown split 'test'"),
        (lambda d: d.update(eot_id=300), "inconsistent"),
    ],
)
def test_each_broken_field_is_named(dataset: Path, change, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        ShardsManifest.from_json(edited(dataset, change), "m")


def test_the_reader_accepts_what_the_writer_writes_for_any_content(dataset: Path) -> None:
    m = ShardsManifest.from_json((dataset / fmt.MANIFEST).read_bytes(), "m")
    other = replace(m, splits={}, config={"vocab_size": 300}, format=FORMAT)
    assert ShardsManifest.from_json(other.to_json(), "m") == other
