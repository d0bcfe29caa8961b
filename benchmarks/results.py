"""What a benchmark script measured, as data: the ``--json PATH`` file of each script.

Every script in ``benchmarks/`` prints markdown for people and, given ``--json PATH``,
writes the same numbers for ``benchmarks/run_all.py`` (``pipeline bench``), which reads
them instead of the printed text::

    {"format": "pipeline-bench-results", "version": 1, "benchmark": "featurise",
     "tables": [{"title": "runs", "rows": [{"run": "stage local[1]", "tokens_per_s": 812.0}]}],
     "targets": [{"target": "local[1] stage tokens/s ÷ raw encode_batch tokens/s",
                  "value": 0.57, "op": ">=", "goal": 0.5, "passed": true}],
     "notes": ["local[2] / local[1] stage tokens/s: 1.00x"]}

Values in table rows are numbers in the units their column names say (``_s`` seconds,
``_mib`` MiB, ``_per_s`` per second), not formatted text. A target compares one measured
ratio with its goal; benchmarks record verdicts, they never assert them.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.fs import atomic_write

FORMAT, VERSION = "pipeline-bench-results", 1


@dataclass(frozen=True)
class Target:
    """One target of a benchmark: a measured value against its goal."""

    target: str
    """What is measured, e.g. ``ours local[1] pages/s ÷ WikiExtractor pages/s``."""
    value: float
    """The measured value (a ratio or a share, unitless)."""
    op: Literal[">=", "<="]
    """``>=``: the value must reach the goal; ``<=``: it must stay at or below it."""
    goal: float
    """The value the target asks for."""

    @property
    def passed(self) -> bool:
        """Whether the value meets the goal."""
        return self.value >= self.goal if self.op == ">=" else self.value <= self.goal

    def line(self) -> str:
        """``TARGET: 0.57 (goal >= 0.5): pass``: the verdict as one line."""
        verdict = "pass" if self.passed else "FAIL"
        return f"{self.target}: {self.value:.2f} (goal {self.op} {self.goal:g}): {verdict}"


@dataclass
class Results:
    """Everything one run of a benchmark script measured."""

    benchmark: str
    """The script's name: ``parse``, ``featurise``, ``train``."""
    tables: list[dict[str, Any]] = field(default_factory=list)
    """``{"title": str, "rows": [{column: value}]}`` per printed table."""
    targets: list[Target] = field(default_factory=list)
    """The targets the run judged, in the order printed."""
    notes: list[str] = field(default_factory=list)
    """Other findings printed as sentences (no verdict)."""

    def table(self, title: str, rows: list[dict[str, Any]]) -> None:
        """Record a table of ``rows`` (column name to value) under ``title``."""
        self.tables.append({"title": title, "rows": rows})

    def target(self, target: str, value: float, goal: float, *, higher: bool = True) -> Target:
        """Record and return a target: ``value`` must be >= ``goal`` (``higher``) or <= it."""
        t = Target(target, float(value), ">=" if higher else "<=", float(goal))
        self.targets.append(t)
        return t

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (see the module docstring)."""
        targets = [{**asdict(t), "passed": t.passed} for t in self.targets]
        return {
            "format": FORMAT,
            "version": VERSION,
            "benchmark": self.benchmark,
            "tables": self.tables,
            "targets": targets,
            "notes": self.notes,
        }

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON form to ``path`` (temporary file, then rename); return the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write(p, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")


def read_results(path: str | os.PathLike[str]) -> Results:
    """Read a ``--json`` file written by :meth:`Results.write`.

    Raises:
        ValueError: the file is not JSON, not of this format or version, or a field is
            missing or of the wrong type (naming the file).
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not {FORMAT} version {VERSION}")
        targets = [
            Target(str(t["target"]), float(t["value"]), t["op"], float(t["goal"]))
            for t in data["targets"]
        ]
        if any(t.op not in (">=", "<=") for t in targets):
            raise ValueError("a target's op is neither >= nor <=")
        tables = [{"title": str(t["title"]), "rows": list(t["rows"])} for t in data["tables"]]
        return Results(str(data["benchmark"]), tables, targets, [str(n) for n in data["notes"]])
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a benchmark results file ({e})") from None
