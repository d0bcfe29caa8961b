"""CLI: help, version, config resolution from flags/files/overrides, exit codes."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline import cli
from pipeline.cli import EXIT_OK, EXIT_USAGE, main
from pipeline.config import ConfigError
from pipeline.errors import PipelineError, UsageError

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
    assert resolved["train"]["max_steps"] == 400  # from conf/local.yaml
    assert resolved["spark"]["master"] == "spark://127.0.0.1:7077"
    assert resolved["train"]["lr"] == pytest.approx(5e-3)


def test_parse_flags_map_to_keys(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["parse", "--input", "a.xml.bz2", "--input", "dumps/*.bz2", "--out", "o"]
    assert main([*argv, "spark.master=local[2]", "--print-config"]) == EXIT_OK
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["parse"]["input"] == ["a.xml.bz2", "dumps/*.bz2"]
    assert resolved["parse"]["out"] == "o"
    assert resolved["spark"]["master"] == "local[2]"
    # flag values reach the config as argparse typed them, never re-read as YAML
    ns = cli.build_parser().parse_args(["parse", "--input", "[a].xml", "--input", "b: c"])
    assert cli.flag_values(ns) == [("parse.input", ["[a].xml", "b: c"])]
    ns = cli.build_parser().parse_args(["train", "-np", "2", "--run", " r "])
    assert cli.flag_values(ns) == [("train.run", "r"), ("train.np", 2)]


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


def test_overwrite_flags_map_to_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", "--overwrite", "--print-config"]) == EXIT_OK
    assert yaml.safe_load(capsys.readouterr().out)["parse"]["overwrite"] is True
    assert main(["download", "enwiki", "--overwrite", "--print-config"]) == EXIT_OK
    assert yaml.safe_load(capsys.readouterr().out)["download"]["overwrite"] is True
    assert main(["parse", "--print-config"]) == EXIT_OK
    assert yaml.safe_load(capsys.readouterr().out)["parse"]["overwrite"] is False
    ns = cli.build_parser().parse_args(["report", "runs/x", "--overwrite"])
    assert ns.overwrite is True


# -- failures: one or two lines, the right exit code, --debug for the traceback ----------


def failing(monkeypatch: pytest.MonkeyPatch, command: str, exc: BaseException) -> None:
    def handler(cfg: object, ns: object) -> int:
        raise exc

    monkeypatch.setitem(cli.HANDLERS, command, handler)
    # set (off) through monkeypatch, so that the "1" a --debug run sets is undone after
    monkeypatch.setenv(cli.DEBUG_ENV, "0")


def err_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        (PipelineError("x is bad; do y"), 1, "pipeline inspect: error: x is bad; do y"),
        (UsageError("name the wiki"), 2, "pipeline inspect: error: name the wiki"),
        (ConfigError("unknown config key 'a'"), 2, "pipeline inspect: config error: unknown"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/d/f.parquet"),
            1,
            "pipeline inspect: error: /d/f.parquet: no space left on device; free space on the "
            "disk holding /d, then re-run",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/d/f"),
            1,
            "pipeline inspect: error: /d/f: permission denied; give this user access to it",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/d/f"),
            1,
            "pipeline inspect: error: /d/f: no such file or directory; check the path",
        ),
        (KeyboardInterrupt(), 130, "pipeline inspect: interrupted"),
        (
            RuntimeError("boom\nmore"),
            1,
            "pipeline inspect: error: internal error: RuntimeError: boom; re-run with --debug "
            "for the traceback, and report it",
        ),
    ],
)
def test_failures_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: BaseException,
    code: int,
    line: str,
) -> None:
    failing(monkeypatch, "inspect", exc)
    assert main(["inspect", "somewhere"]) == code
    lines = err_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith(line)


def test_a_full_disk_names_the_output_and_its_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failing(monkeypatch, "parse", OSError(errno.ENOSPC, "No space left on device"))
    assert main(["parse", "--out", "/x/pages"]) == 1
    assert err_lines(capsys) == [
        "pipeline parse: error: no space left on device while writing /x/pages; free space on "
        "the disk or choose another --out (parse.out), then re-run",
        "pipeline parse: nothing was published.",
    ]
    failing(monkeypatch, "train", OSError(errno.EROFS, "Read-only file system", "/ro/run"))
    assert main(["train", "--run", "/ro/run"]) == 1
    assert err_lines(capsys) == [
        "pipeline train: error: /ro/run: read-only file system; choose another --run "
        "(train.run) on a writable disk"
    ]


def test_a_spark_failure_reports_the_workers_cause(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.support.spark_errors import dataframe_error, rdd_error

    exc = dataframe_error("OSError: [Errno 28] No space left on device: '/s/.stage/p-0.arrow'")
    failing(monkeypatch, "featurise", exc)
    assert main(["featurise", "--out", "/s"]) == 1
    assert err_lines(capsys)[0] == (
        "pipeline featurise: error: /s/.stage/p-0.arrow: no space left on device; free space "
        "on the disk holding /s or choose another --out (featurise.out), then re-run"
    )
    failing(monkeypatch, "parse", rdd_error("ZeroDivisionError: division by zero"))
    assert main(["parse"]) == 1
    assert err_lines(capsys)[0] == (
        "pipeline parse: error: internal error: a Spark job failed: ZeroDivisionError: division "
        "by zero; re-run with --debug for the traceback, and report it"
    )


def test_run_names_the_stage_and_the_cause(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.run import RunError

    try:
        raise RunError("parse", "[Errno 28] No space left on device") from OSError(
            errno.ENOSPC, "No space left on device"
        )
    except RunError as e:
        failing(monkeypatch, "run", e)
    assert main(["run", "--work-dir", "/w"]) == 1
    assert err_lines(capsys) == [
        "pipeline run: stage parse failed: no space left on device while writing /w; free "
        "space on the disk or choose another --work-dir (work_dir), then re-run"
    ]
    failing(monkeypatch, "run", RunError("train", "rank 1 died"))
    assert main(["run"]) == 1
    assert err_lines(capsys) == ["pipeline run: stage train failed: rank 1 died"]


@pytest.mark.parametrize(
    "argv", [["--debug", "inspect", "x"], ["inspect", "x", "--debug"], ["inspect", "x"]]
)
def test_debug_lets_the_traceback_through(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    failing(monkeypatch, "inspect", OSError(errno.ENOSPC, "No space left on device"))
    if "--debug" not in argv:
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(OSError):
        main(argv)


def test_debug_flag_is_off_by_default() -> None:
    for argv in (["inspect", "x"], ["parse"], ["--debug", "parse"], ["parse", "--debug"]):
        ns = cli.build_parser().parse_args(argv)
        assert ns.debug is ("--debug" in argv)


def test_pipeline_train_refuses_to_run_inside_a_horovodrun_rank(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rank runs jobs/train.py; ``pipeline train`` there would start horovodrun again."""
    monkeypatch.setenv("HOROVOD_RANK", "1")
    assert main(["train", "train.np=2"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "pipeline train: error: pipeline train launches the ranks" in err
    assert "python jobs/train.py CONFIG.yaml" in err
