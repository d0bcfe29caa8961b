"""The code a stage runs, found from its imports, and its sha256 (for stage fingerprints).

``pipeline run`` skips a stage whose output was made by the same code. "The same code"
is the bytes of every module of this project (``pipeline``, ``models``, ``jobs``) that
the stage's entry module imports, directly or through others, found by reading the
``import`` statements of each module with :mod:`ast` (function-level imports included;
nothing is executed). A change to a shared module (``pipeline/fs.py``,
``pipeline/config.py``) therefore re-runs every stage that imports it, and a change to
the training loop leaves the parse stage's hash alone.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

import pipeline

ROOT = Path(pipeline.__file__).resolve().parent.parent
PACKAGES = ("pipeline", "models", "jobs")


def _module_file(name: str, root: Path = ROOT) -> Path | None:
    """The source file of module ``name`` of this project, or None if it is not one."""
    if name.split(".")[0] not in PACKAGES:
        return None
    parts = name.split(".")
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str, root: Path) -> set[str]:
    """Module names of this project that the source at ``path`` (module ``name``) imports;
    ``from a import b`` counts ``a`` and, when it is a module, ``a.b``."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = importlib.util.resolve_name("." * node.level + base, package)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    out: set[str] = set()
    for mod in found:
        parts = mod.split(".")
        # importing a.b.c runs a/__init__ and a/b/__init__ too
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in out if _module_file(m, root) is not None}


@cache
def module_closure(entry: str, root: Path = ROOT) -> tuple[Path, ...]:
    """Source files of ``entry`` and of every project module it imports, transitively.

    Args:
        entry: a dotted module name, e.g. ``pipeline.spark.parse_stage``.
        root: the folder holding the packages (the repository; another copy in tests).

    Returns:
        The files, sorted by path.

    Raises:
        ValueError: ``entry`` is not a module of this project.
    """
    if _module_file(entry, root) is None:
        raise ValueError(f"{entry} is not a module of this project ({', '.join(PACKAGES)})")
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:
            continue
        seen[name] = path
        todo.extend(_imports(path, name, root) - seen.keys())
    return tuple(sorted(set(seen.values())))


def code_hash(*entries: str, root: Path = ROOT) -> str:
    """sha256 over the version, then the path (relative to ``root``) and bytes of every
    file in the closure of ``entries`` (hex, 64 characters)."""
    h = hashlib.sha256(pipeline.__version__.encode())
    files = sorted({f for e in entries for f in module_closure(e, root)})
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
