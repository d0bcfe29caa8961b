"""The data contracts between stages (DESIGN.md "Contracts"), as types.

Each contract has one writer and one validating reader, a ``format_version``, and field
docstrings giving units:

- :mod:`pipeline.contracts.manifest`: ``shards/manifest.json`` (featurise → training);
- :mod:`pipeline.contracts.pages`: the ``pages/`` schema and ``_stats.json`` (parse →
  featurise, report);
- :mod:`pipeline.outputs`: ``_pipeline_output.json``, the ownership marker of every output.

Nothing here imports Spark, torch or Horovod.
"""

from __future__ import annotations

import json
from typing import Any


def versioned_object(
    raw: bytes,
    where: str,
    *,
    fmt: str,
    version: int,
    what: str,
    rerun: str,
    error: type[Exception],
) -> dict[str, Any]:
    """The JSON object of a contract file, checked for its ``format`` and ``format_version``.

    Args:
        raw: the file's bytes.
        where: the file's path or URI, for messages.
        fmt: the ``format`` value the object must carry.
        version: the ``format_version`` this code reads.
        what: the contract's name in messages (``shards manifest``, ``pages table``).
        rerun: what to do about another version (``re-run `pipeline parse```).
        error: the exception class to raise.

    Raises:
        error: not JSON or not UTF-8; not an object of ``fmt``; another version (an old
            file's ``version`` key is named too).
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{where}: not JSON ({e})") from None
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise error(f"{where}: not a {what} (format must be {fmt!r})")
    if data.get("format_version") != version:
        old = data.get("format_version", data.get("version"))
        raise error(
            f"{where}: {what} version {old} is not supported (this code reads version "
            f"{version}); {rerun}"
        )
    return data
