"""CLI: help, version, config resolution from flags/files/overrides, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline.cli import EXIT_OK, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = [
    "download",
    "parse",
    "featurise",
    "train",
    "run",
    "generate",
    "inspect",
    "report",
    "bench",
]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"pipeline {pipeline.__version__}"


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([name, "--help"])
    assert e.value.code == 0
    assert f"usage: pipeline {name}" in capsys.readouterr().out


def test_bad_override_names_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "train.nope=1"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "train.nope" in err and "valid keys at train" in err


def test_print_config_precedence(capsys: pytest.CaptureFixture[str]) -> None:
    """conf file < positional override < stage flag."""
    argv = ["train", str(ROOT / "conf" / "local.yaml"), "train.np=1", "-np", "4"]
    argv += ["train.global_batch=64", "--master", "spark://127.0.0.1:7077", "--print-config"]
    assert main(argv) == EXIT_OK
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["train"]["np"] == 4  # flag beats positional override
    assert resolved["train"]["max_steps"] == 200  # from conf/local.yaml
    assert resolved["spark"]["master"] == "spark://127.0.0.1:7077"
    assert resolved["train"]["lr"] == pytest.approx(1e-3)


def test_parse_flags_map_to_keys(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["parse", "--input", "a.xml.bz2", "--input", "dumps/*.bz2", "--out", "o"]
    assert main([*argv, "spark.master=local[2]", "--print-config"]) == EXIT_OK
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["parse"]["input"] == ["a.xml.bz2", "dumps/*.bz2"]
    assert resolved["parse"]["out"] == "o"
    assert resolved["spark"]["master"] == "local[2]"


def test_two_config_files_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "a.yaml", "b.yaml"]) == EXIT_USAGE
    assert "two config files" in capsys.readouterr().err


def test_stray_argument_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "dump.xml.bz2"]) == EXIT_USAGE
    assert "neither a config file" in capsys.readouterr().err


def test_help_config_lists_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--help-config"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "train.global_batch" in out and "Sequences per optimizer step" in out
