"""Typed configuration: dataclasses, YAML presets and overrides.

An override is a ``key.sub=value`` string (text, converted by the field's type) or a
``(key.sub, value)`` pair whose value is already typed (the command line's flags, as
argparse parsed them), checked like a file value.

Precedence is command line > config file > dataclass defaults. Every key is checked: an
unknown key fails with the list of valid keys at that level, a value of the wrong type
fails with the expected type, and each dataclass validates its values in
``__post_init__``. YAML is read with ``yaml.safe_load`` only.

The per-stage sections live in :mod:`pipeline.stage_config`; the model section is
:class:`models.gpt.GPTConfig`. This module holds the generic machinery.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import os
import re
import types
import typing
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from pipeline.fs import atomic_write

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is wrong: unknown key, wrong type or invalid value."""


# ---------------------------------------------------------------------------------------
# field docstrings (the string literal under each field, torchtitan style)
# ---------------------------------------------------------------------------------------


@cache
def field_docs(cls: type) -> dict[str, str]:
    """Return ``{field name: docstring}`` for a dataclass whose fields carry docstrings.

    The docstring of a field is the string literal written on the line after it, as in
    torchtitan's job config. Read from the class source with :mod:`ast`; never executed.
    """
    docs: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return docs
    tree = ast.parse(inspect.cleandoc(source) if source.startswith(" ") else source)
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, nxt in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (arg, *_) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(arg)}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"mapping of {_type_name(k)} to {_type_name(v)}"
    return getattr(tp, "__name__", str(tp))


# ---------------------------------------------------------------------------------------
# YAML: plain values only, errors with their position
# ---------------------------------------------------------------------------------------

_TAG = re.compile(r"constructor for the tag '([^']*)'")


def _short_tag(tag: str) -> str:
    """``tag:yaml.org,2002:python/object:os.system`` -> ``!!python/object:os.system``."""
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


def yaml_problem(e: yaml.YAMLError, *, position: bool = True) -> str:
    """Position and cause of a YAML error: ``at line 3, column 7: tag !!python/object is
    not allowed; only plain YAML is read`` (the position when the error has one)."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    pos = f" at line {mark.line + 1}, column {mark.column + 1}" if mark and position else ""
    problem = str(getattr(e, "problem", None) or e).strip()
    m = _TAG.search(problem)
    if m:
        return (
            f"{pos}: tag {_short_tag(m.group(1))} is not allowed; only plain YAML is read "
            "(no !! tags)"
        )
    return f"{pos}: invalid YAML: {problem}"


def safe_yaml(text: str, where: str, *, position: bool = True) -> Any:
    """``yaml.safe_load(text)``; a YAML error or a ``!!python/...`` tag becomes a
    :class:`ConfigError` naming ``where`` (a file, an override) and the line and column."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}{yaml_problem(e, position=position)}") from None


def _check_tagless(value: str, key: str) -> None:
    if value.lstrip().startswith("!!"):
        tag = value.strip().split()[0]
        raise ConfigError(
            f"override {key}={value}: tag {tag} is not allowed; only plain YAML values are read"
        )


# ---------------------------------------------------------------------------------------
# value checking and coercion
# ---------------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _check(value: Any, tp: Any, key: str, from_text: bool) -> Any:
    """Return ``value`` as type ``tp`` or raise :class:`ConfigError` naming ``key``.

    ``from_text`` is true for command-line overrides, whose values arrive as strings and
    are converted by the field's type (so ``spark.master=local[2]`` stays a string and
    ``train.steps=10`` becomes an int). File values keep their YAML type and must match.
    """
    bad = ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if from_text and isinstance(value, str):
        _check_tagless(value, key)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if type(None) in args and (
            value is None or (from_text and str(value).lower() in ("null", "none", "~"))
        ):
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _check(value, arg, key, from_text)
            except ConfigError:
                pass
        raise bad
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise bad
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and str(value).lower() in _TRUE | _FALSE:
            return str(value).lower() in _TRUE
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if from_text:
            try:
                return int(str(value).replace("_", ""))
            except ValueError:
                raise bad from None
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_text:
            try:
                return float(value)
            except ValueError:
                raise bad from None
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin in (list, tuple):
        (arg,) = typing.get_args(tp)
        if from_text and isinstance(value, str):
            # "[a, b]" is a YAML flow list; anything else is one element (so a glob such as
            # "*.bz2", which YAML would read as an alias, stays a path).
            if value.strip().startswith("["):
                items = safe_yaml(value, f"override {key}={value}", position=False)
                if not isinstance(items, list):
                    raise bad
                return [_check(v, arg, f"{key}[{i}]", False) for i, v in enumerate(items)]
            return [_check(value, arg, f"{key}[0]", True)]
        if not isinstance(value, list):
            raise bad
        return [_check(v, arg, f"{key}[{i}]", from_text) for i, v in enumerate(value)]
    if origin is dict:
        if from_text and isinstance(value, str):
            value = safe_yaml(value, f"override {key}={value}", position=False)
        if not isinstance(value, dict):
            raise bad
        kt, vt = typing.get_args(tp)
        return {
            _check(k, kt, key, from_text): _check(v, vt, f"{key}.{k}", from_text)
            for k, v in value.items()
        }
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # a bug in a config class


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, checking keys and types.

    Args:
        cls: a dataclass whose fields are scalars, lists, dicts or nested dataclasses.
        data: mapping of field name to value (from YAML); missing fields take defaults.
        prefix: dotted path of ``cls`` inside the top-level config, used in messages.

    Raises:
        ConfigError: unknown key (naming the valid keys), wrong type, or a value that the
            class's ``__post_init__`` rejects (its ``ValueError`` is re-raised with the key).
    """
    data = {} if data is None else data
    where = prefix.rstrip(".") or "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cast(Any, cls)) if f.init]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(
                f"unknown config key '{prefix}{key}'; valid keys at {where}: {', '.join(names)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = from_dict(cast(type, tp), value, f"{prefix}{key}.")
        else:
            kwargs[key] = _check(value, tp, f"{prefix}{key}", from_text=False)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Return a plain, YAML-safe nested dict of a config dataclass (the resolved config)."""
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------------------------------
# overrides and loading
# ---------------------------------------------------------------------------------------


def parse_override(text: str) -> tuple[str, str]:
    """Split ``"key.sub=value"`` into ``("key.sub", "value")``.

    Raises:
        ConfigError: when there is no ``=`` or the key is empty.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' is not of the form key.sub=value")
    return key.strip(), value


def apply_override(cls: type, data: dict[str, Any], key: str, raw: str) -> None:
    """Set dotted ``key`` in the nested mapping ``data`` to ``raw`` converted by its type.

    Raises:
        ConfigError: the key does not exist (naming the valid keys) or the value does not
            convert to the field's type.
    """
    _set(cls, data, key, raw, from_text=True)


def apply_value(cls: type, data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in the nested mapping ``data`` to an already typed ``value`` (a
    command-line flag as argparse parsed it: ``2``, ``["a.xml", "b.xml"]``), checked
    against the field's type as a file value is, with no text conversion.

    Raises:
        ConfigError: the key does not exist (naming the valid keys) or the value is not of
            the field's type.
    """
    _set(cls, data, key, value, from_text=False)


def _set(cls: type, data: dict[str, Any], key: str, value: Any, *, from_text: bool) -> None:
    parts = key.split(".")
    node, tp, path = data, cls, ""
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(tp):
            raise ConfigError(f"unknown config key '{key}': '{path.rstrip('.')}' has no sub-keys")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            where = path.rstrip(".") or "the top level"
            raise ConfigError(
                f"unknown config key '{key}'; valid keys at {where}: {', '.join(names)}"
            )
        ftp = _hints(tp)[part]
        if i == len(parts) - 1:
            if dataclasses.is_dataclass(ftp):
                raise ConfigError(
                    f"'{key}' is a section; set one of its keys: "
                    + ", ".join(f"{key}.{f.name}" for f in dataclasses.fields(ftp))
                )
            node[part] = _check(value, ftp, key, from_text=from_text)
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"{path}{part}: expected a mapping of keys, got {child!r}")
        node, tp, path = child, ftp, f"{path}{part}."


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file with ``yaml.safe_load``.

    Raises:
        ConfigError: the file is missing or unreadable, is not valid YAML or holds a tag
            such as ``!!python/object`` (with line and column), or its top level is not a
            mapping.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: not a UTF-8 text file (byte {e.start}); pass a YAML file"
        ) from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    data = safe_yaml(text, f"{p}")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: the top level must be a mapping of keys, got {type(data).__name__}"
        )
    return data


Override = str | tuple[str, Any]
"""A ``"key.sub=value"`` string (text, converted by the field's type) or a ``("key.sub",
value)`` pair whose value is already typed (checked, not converted)."""


def load(
    cls: type[T],
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[Override] = (),
) -> T:
    """Resolve config ``cls`` from defaults, an optional YAML file and overrides.

    Args:
        cls: the top-level config dataclass.
        path: YAML preset; its keys must all exist in ``cls``.
        overrides: applied in order after the file: ``key.sub=value`` strings (see
            :func:`apply_override`) and ``(key, typed value)`` pairs (see
            :func:`apply_value`), such as the command line's flags.

    Raises:
        ConfigError: see :func:`read_yaml`, :func:`apply_override`, :func:`apply_value` and
            :func:`from_dict`; errors from the file name the file.
    """
    data = read_yaml(path) if path is not None else {}
    if path is not None:
        try:
            from_dict(cls, data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for item in overrides:
        if isinstance(item, str):
            key, raw = parse_override(item)
            apply_override(cls, data, key, raw)
        else:
            key, value = item
            apply_value(cls, data, key, value)
    return from_dict(cls, data)


def save_resolved(cfg: Any, path: str | os.PathLike[str]) -> Path:
    """Write the resolved config as YAML to ``path`` atomically (temp file, then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(p, yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, str, str]]:
    """List ``(key, type, default, doc)`` for every leaf key of config ``cls``, for help."""
    rows: list[tuple[str, str, str, str]] = []
    hints = _hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(cast(type, tp), f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        first = docs.get(f.name, "").split("\n\n")[0].replace("\n", " ")
        rows.append((f"{prefix}{f.name}", _type_name(tp), repr(default), first))
    return rows
