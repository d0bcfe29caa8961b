"""``pipeline run`` with the curate stage: fingerprints chain parse → curate → featurise, and
``curate.enabled=false`` takes curate out of the chain (featurise then reads pages/)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import run
from pipeline.cli.command import build_parser, resolve_config
from pipeline.stage_config import load_config

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = "enwiki-pages-articles-sample.xml.bz2"


def fingerprints(wiki_data: Path, tmp_path: Path, *overrides: str) -> tuple[dict, object]:
    cfg = load_config(
        ROOT / "conf" / "local.yaml",
        [f"parse.input=[{wiki_data / SAMPLE}]", f"work_dir={tmp_path}", *overrides],
    )
    return run.fingerprints(cfg, run._HashCache(tmp_path / ".hashes.json")), cfg


def test_curate_sits_between_parse_and_featurise(wiki_data: Path, tmp_path: Path) -> None:
    fps, cfg = fingerprints(wiki_data, tmp_path)
    assert list(fps) == ["parse", "curate", "featurise", "train"]
    assert fps["curate"]["upstream"] == fps["parse"]["sha256"]
    assert fps["featurise"]["upstream"] == fps["curate"]["sha256"]
    assert run.stage_dirs(cfg)["curate"] == tmp_path / "curated"
    # a curate threshold changes curate's fingerprint and so featurise's, not parse's
    other, _ = fingerprints(wiki_data, tmp_path, "curate.near_dup_threshold=0.9")
    assert other["parse"] == fps["parse"]
    assert other["curate"]["sha256"] != fps["curate"]["sha256"]
    assert other["featurise"]["sha256"] != fps["featurise"]["sha256"]
    # where the output goes is not part of it
    moved, _ = fingerprints(wiki_data, tmp_path, f"curate.out={tmp_path / 'elsewhere'}")
    assert moved["curate"]["sha256"] == fps["curate"]["sha256"]


def test_disabled_curate_is_left_out(wiki_data: Path, tmp_path: Path) -> None:
    fps, cfg = fingerprints(wiki_data, tmp_path, "curate.enabled=false")
    assert list(fps) == ["parse", "featurise", "train"]
    assert fps["featurise"]["upstream"] == fps["parse"]["sha256"]
    assert run.plan(cfg, fps, None) == ["parse", "featurise", "train"]
    # a complete parse output with the same fingerprint is up to date
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "_SUCCESS").write_bytes(b"")
    (pages / run.FINGERPRINT).write_text(json.dumps(fps["parse"]))
    assert run.plan(cfg, fps, None) == ["featurise", "train"]


def test_curate_command_flags_map_to_config() -> None:
    ns = build_parser().parse_args(
        ["curate", "--pages", "p", "--out", "c", "--overwrite", "curate.languages=[en]"]
    )
    cfg = resolve_config(ns)
    assert (cfg.curate.pages, cfg.curate.out, cfg.curate.overwrite) == ("p", "c", True)
    assert cfg.curate.languages == ["en"]
    assert (cfg.paths.curate_pages, cfg.paths.curated) == ("p", "c")
