"""Stage code hashes come from what each stage imports (issue 13: the hand-kept list
missed shared modules, so `pipeline run` could skip a stage whose code had changed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline import codehash
from pipeline.run import _ENTRY


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the project's packages to edit."""
    for pkg in codehash.PACKAGES:
        shutil.copytree(
            codehash.ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


def hashes(root: Path) -> dict[str, str]:
    codehash.module_closure.cache_clear()
    return {stage: codehash.code_hash(entry, root=root) for stage, entry in _ENTRY.items()}


def changed(root: Path, rel: str) -> set[str]:
    """The stages whose hash changes when ``rel`` gets one more line."""
    before = hashes(root)
    with (root / rel).open("a") as f:
        f.write("\n# touched\n")
    after = hashes(root)
    return {s for s in before if before[s] != after[s]}


def test_the_hash_of_the_repository_is_that_of_an_identical_copy(tree: Path) -> None:
    assert hashes(tree) == hashes(codehash.ROOT)


@pytest.mark.parametrize(
    ("rel", "stages"),
    [
        ("pipeline/fs.py", {"parse", "curate", "featurise", "train"}),  # missed by the old list
        ("pipeline/config.py", {"parse", "curate", "featurise", "train"}),
        ("pipeline/spark/session.py", {"parse", "curate", "featurise", "train"}),
        ("pipeline/wiki/clean.py", {"parse"}),  # featurise reads pages through the contract
        ("pipeline/shards/pack.py", {"featurise"}),
        ("pipeline/curate/quality.py", {"curate"}),  # featurise reads the curated contract
        ("pipeline/train/loop.py", {"train"}),
        ("models/gpt.py", {"train"}),
        ("pipeline/report.py", set()),
        ("pipeline/cli/command.py", set()),  # stage modules never import the CLI
        ("pipeline/cli/handlers.py", set()),
    ],
)
def test_touching_a_module_invalidates_exactly_the_stages_that_import_it(
    tree: Path, rel: str, stages: set[str]
) -> None:
    assert changed(tree, rel) == stages


def test_function_level_and_relative_imports_are_followed(tree: Path) -> None:
    (tree / "pipeline" / "newmod.py").write_text("X = 1\n")
    (tree / "pipeline" / "shards" / "helper.py").write_text("Y = 2\n")
    with (tree / "pipeline" / "train" / "launch.py").open("a") as f:
        f.write(
            "\ndef _late():\n    from pipeline import newmod\n    from ..shards import helper\n"
        )
    codehash.module_closure.cache_clear()
    files = {
        str(p.relative_to(tree)) for p in codehash.module_closure("pipeline.train.launch", tree)
    }
    assert {"pipeline/newmod.py", "pipeline/shards/helper.py"} <= files
    with pytest.raises(ValueError, match="not a module of this project"):
        codehash.module_closure("numpy")
