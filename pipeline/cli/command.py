"""The ``pipeline`` command: its arguments, its config and the dispatch to a handler.

Usage::

    pipeline SUBCOMMAND [options] [CONFIG.yaml] [key.sub=value ...]

Positional arguments ending in ``.yaml``/``.yml`` name the config file (or use
``--config``); those containing ``=`` are overrides. Stage flags such as ``--out`` are
shorthands for overrides. Precedence: command line > config file > defaults.

Exit codes: 0 success; 1 a stage failed; 2 bad usage or config; 130 interrupted.

Each subcommand runs its handler in :mod:`pipeline.cli.handlers`, imported only when the
command runs, so that ``--help`` never starts Spark or Horovod. A failure is printed by
:mod:`pipeline.cli.failures` as one or two lines, ``pipeline CMD: error: WHAT; WHAT TO
DO``, never as a traceback; ``--debug`` (or ``PIPELINE_DEBUG=1``) lets the traceback
through instead.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import get_args

import yaml

import pipeline
from pipeline import config as cfgmod
from pipeline.cli.failures import DEBUG_ENV, debug_enabled, report_failure
from pipeline.errors import EXIT_OK
from pipeline.stage_config import DumpKind, PipelineConfig, load_config

# subcommand -> (help, the issue that built it)
_SUBCOMMANDS: dict[str, tuple[str, int]] = {
    "download": ("fetch a dump + index from a Wikimedia mirror (resumable, sha1-checked)", 6),
    "parse": ("MediaWiki XML dumps -> pages/ Parquet table (Spark)", 3),
    "curate": ("pages/ -> curated/: dedup, language ID, quality rules (Spark)", 16),
    "featurise": ("pages/ -> tokenizer + packed Arrow token shards + manifest (Spark)", 4),
    "train": ("data-parallel GPT training on the shards (Horovod or torch.distributed)", 5),
    "run": ("the whole pipeline: parse, featurise, train, report (incremental)", 6),
    "generate": ("sample text from an exported model", 5),
    "inspect": ("summarise a pages/ or shards/ folder", 4),
    "report": ("metrics and plots of a training run", 6),
    "bench": ("run the benchmarks; write bench.json and bench.md", 6),
}


def _debug_flag(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help=f"show the full traceback of a failure (or set {DEBUG_ENV}=1)",
    )


def _common(p: argparse.ArgumentParser, *, takes_config: bool = True) -> None:
    # SUPPRESS: a sub-parser's default would overwrite a top-level --debug.
    _debug_flag(p, argparse.SUPPRESS)
    if not takes_config:
        return
    p.add_argument("-c", "--config", metavar="FILE", help="YAML config preset (see conf/)")
    p.add_argument(
        "args",
        nargs="*",
        metavar="CONFIG.yaml | key.sub=value",
        help="a config file and/or overrides, e.g. spark.master=local[2] train.np=2",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--help-config", action="store_true", help="list every config key with its type")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``pipeline`` command (one sub-parser per stage)."""
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Spark + GPU pipeline: MediaWiki dumps -> pages -> token shards -> GPT.",
        epilog="Config: pipeline SUBCOMMAND --help-config lists every key.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {pipeline.__version__}")
    _debug_flag(parser, False)
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    ps = {
        name: sub.add_parser(name, help=h, description=h) for name, (h, _) in _SUBCOMMANDS.items()
    }

    p = ps["download"]
    p.add_argument("wiki", nargs="?", metavar="WIKI", help="wiki database name, e.g. enwiki")
    p.add_argument("--date", metavar="YYYYMMDD|latest", help="dump date (default latest)")
    p.add_argument("--kind", choices=list(get_args(DumpKind)), help="which dump (download.kind)")
    p.add_argument("--out", metavar="DIR", help="download folder (download.out)")
    p.add_argument("--mirror", metavar="URL", help="mirror base URL (download.mirror)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing download (download.overwrite)"
    )

    p = ps["parse"]
    p.add_argument(
        "--input", "--dump", action="append", metavar="PATH", help="dump file/folder/glob/URI"
    )
    p.add_argument("--out", metavar="DIR", help="output pages folder (parse.out)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace a previous pages output (parse.overwrite)"
    )

    p = ps["curate"]
    p.add_argument("--pages", metavar="DIR", help="input pages folder (curate.pages)")
    p.add_argument("--out", metavar="DIR", help="output curated folder (curate.out)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous curated output (curate.overwrite)",
    )

    p = ps["featurise"]
    p.add_argument("--pages", metavar="DIR", help="input pages folder (featurise.pages)")
    p.add_argument("--out", metavar="DIR", help="output shards folder (featurise.out)")
    p.add_argument("--tokenizer", metavar="FILE", help="existing tokenizer.json to use")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")

    p = ps["train"]
    p.add_argument("--data", metavar="DIR", help="shards folder (train.data)")
    p.add_argument("--run", metavar="DIR", help="run folder (train.run)")
    p.add_argument("-np", type=int, metavar="N", help="number of ranks (train.np)")
    p.add_argument("--hosts", metavar="H:N,...", help="horovodrun hosts (train.hosts)")
    p.add_argument("--launcher", choices=["horovodrun", "spark", "local", "torchrun"])
    p.add_argument(
        "--backend", choices=["horovod", "torch"], help="distributed backend (train.backend)"
    )
    p.add_argument("--master", metavar="URL", help="Spark master for --launcher spark")

    p = ps["run"]
    p.add_argument(
        "--dump", "--input", action="append", metavar="PATH", help="dumps or corpora to parse"
    )
    p.add_argument(
        "--wiki",
        metavar="WIKI",
        help="without --dump: download this wiki's dump first (download.wiki)",
    )
    p.add_argument("--date", metavar="YYYYMMDD|latest", help="dump date with --wiki")
    p.add_argument("--work-dir", metavar="DIR", help="work folder (work_dir)")
    p.add_argument(
        "--force", choices=["parse", "curate", "featurise", "train"], help="re-run from STAGE"
    )

    p = ps["generate"]
    p.add_argument("--model", metavar="DIR", required=True, help="exported model folder")
    p.add_argument("--prompt", default="", help="text to continue")
    p.add_argument("--max-new-tokens", type=int, default=100)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=200)
    p.add_argument("--seed", type=int, default=None)

    ps["inspect"].add_argument("path", metavar="DIR", help="a pages/ or shards/ folder")
    p = ps["report"]
    p.add_argument("path", metavar="RUN_DIR", help="a runs/NAME folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p = ps["bench"]
    p.add_argument(
        "name", nargs="?", default="all", choices=["all", "parse", "curate", "featurise", "train"]
    )
    p.add_argument("--out", metavar="DIR", default="work/bench", help="bench.json/bench.md folder")
    p.add_argument("--quick", action="store_true", help="small inputs: a smoke run")

    for name, p in ps.items():
        _common(p, takes_config=name not in ("generate", "inspect", "report"))
    return parser


def flag_values(ns: argparse.Namespace) -> list[tuple[str, object]]:
    """The stage flags of a parsed command line as ``(config key, value)`` pairs, values as
    argparse typed them (``-np 2`` an int, ``--input`` a list); flags not given are left out.
    """
    pairs: list[tuple[str, object]] = []
    cmd = ns.command
    if cmd == "download":
        pairs += [("download.wiki", ns.wiki), ("download.date", ns.date)]
        pairs += [("download.kind", ns.kind), ("download.out", ns.out)]
        pairs += [("download.mirror", ns.mirror), ("download.overwrite", ns.overwrite or None)]
    elif cmd == "parse":
        pairs += [("parse.input", ns.input or None)]
        pairs += [("parse.out", ns.out), ("parse.overwrite", ns.overwrite or None)]
    elif cmd == "curate":
        pairs += [("curate.pages", ns.pages), ("curate.out", ns.out)]
        pairs += [("curate.overwrite", ns.overwrite or None)]
    elif cmd == "featurise":
        pairs += [("featurise.pages", ns.pages), ("featurise.out", ns.out)]
        pairs += [("featurise.tokenizer", ns.tokenizer)]
        pairs += [("featurise.overwrite", ns.overwrite or None)]
    elif cmd == "train":
        pairs += [("train.data", ns.data), ("train.run", ns.run), ("train.np", ns.np)]
        pairs += [("train.hosts", ns.hosts), ("train.launcher", ns.launcher)]
        pairs += [("train.backend", ns.backend)]
        pairs += [("spark.master", ns.master)]
    elif cmd == "run":
        pairs += [("parse.input", ns.dump or None)]
        pairs += [("work_dir", ns.work_dir), ("download.wiki", ns.wiki)]
        pairs += [("download.date", ns.date)]
    return [(k, v.strip() if isinstance(v, str) else v) for k, v in pairs if v is not None]


def resolve_config(ns: argparse.Namespace) -> PipelineConfig:
    """Resolve the config of a parsed command line: defaults < file < overrides < flags.

    Raises:
        pipeline.config.ConfigError: two config files, an argument that is neither a YAML
            file nor ``key=value``, or any error of :func:`pipeline.stage_config.load_config`.
    """
    path = ns.config
    overrides: list[str] = []
    for arg in ns.args:
        if "=" in arg:
            overrides.append(arg)
        elif arg.endswith((".yaml", ".yml")):
            if path is not None:
                raise cfgmod.ConfigError(f"two config files given: {path} and {arg}; pass one")
            path = arg
        else:
            raise cfgmod.ConfigError(
                f"argument '{arg}' is neither a config file (*.yaml) nor an override "
                "(key.sub=value)"
            )
    # load_config takes cfgmod.Override items: text overrides and typed (key, value) pairs
    return load_config(path, [*overrides, *flag_values(ns)])


def _print_keys() -> None:
    rows = cfgmod.describe(PipelineConfig)
    width = max(len(k) for k, *_ in rows)
    for key, tp, default, doc in rows:
        print(f"{key:<{width}}  {tp} = {default}\n{'':<{width}}  {doc}")


def _stage(name: str) -> Callable[[PipelineConfig | None, argparse.Namespace], int]:
    def handler(cfg: PipelineConfig | None, ns: argparse.Namespace) -> int:
        from pipeline.cli import handlers

        return getattr(handlers, name)(cfg, ns)

    return handler


# subcommand -> handler(config or None, args) -> exit code; the rest arrive with their issue.
HANDLERS: dict[str, Callable[[PipelineConfig | None, argparse.Namespace], int]] = {
    name: _stage(name) for name in _SUBCOMMANDS
}


def _run(ns: argparse.Namespace, state: dict[str, object]) -> int:
    cfg: PipelineConfig | None = None
    if hasattr(ns, "args"):
        if ns.help_config:
            _print_keys()
            return EXIT_OK
        cfg = resolve_config(ns)
        state["cfg"] = cfg
        if ns.print_config:
            print(yaml.safe_dump(cfgmod.to_dict(cfg), sort_keys=False), end="")
            return EXIT_OK
    return HANDLERS[ns.command](cfg, ns)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pipeline`` console script; returns the process exit code.

    A failure is printed as one or two lines and mapped to its exit code (see the module
    docstring); with ``--debug`` or ``PIPELINE_DEBUG=1`` the exception propagates instead,
    so Python prints its traceback.
    """
    parser = build_parser()
    # parse_known_args + this loop lets overrides and config files sit anywhere among
    # the flags (argparse's nargs="*" only takes one contiguous run of positionals).
    ns, extra = parser.parse_known_args(argv)
    for arg in extra:
        if arg.startswith("-") or not hasattr(ns, "args"):
            parser.error(f"unrecognized arguments: {arg}")
        ns.args.append(arg)
    debug = debug_enabled(ns)
    if debug:
        os.environ[DEBUG_ENV] = "1"  # ranks and Spark workers started from here inherit it
    state: dict[str, object] = {}
    try:
        return _run(ns, state)
    except Exception as e:
        if debug:
            raise
        return report_failure(e, ns.command, state.get("cfg"), ns)  # type: ignore[arg-type]
    except KeyboardInterrupt as e:
        if debug:
            raise
        return report_failure(e, ns.command)
