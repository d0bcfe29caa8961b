"""``shards/manifest.json``: the contract between featurise and training, as types.

One writer (:meth:`ShardsManifest.to_json`) and one validating reader
(:meth:`ShardsManifest.from_json`); every producer and consumer, tests included, goes
through them. The JSON is indented, key-sorted UTF-8, so the same content gives the same
bytes (DESIGN.md: same pages + same config give byte-identical shards and manifest).

Format history: version 1 (``"version": 1``) was a hand-built dict; version 2
(``"format_version": 2``) is this module. Readers accept only version 2 and name the
old one.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.contracts import versioned_object

FORMAT = "spark-gpu-pipeline/shards"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")


class ManifestError(ValueError):
    """A manifest is not JSON, of another format or version, or misses or mistypes a
    field; the message names the file and the field."""


@dataclass(frozen=True)
class ShardInfo:
    """One shard file as the manifest lists it."""

    path: str
    """Path relative to the dataset folder (``train/part-00000-of-00004.arrow``); never
    absolute, never leaving the folder."""
    sequences: int
    """Rows in the shard; each row is one training sequence of ``block_size + 1`` tokens."""
    tokens: int
    """Tokens stored in the shard: ``sequences * (block_size + 1)``."""
    bytes: int
    """File size in bytes."""
    sha256: str
    """Hex sha256 of the file."""


@dataclass(frozen=True)
class SplitInfo:
    """One split (``train`` or ``val``): its shards and what went into them."""

    shards: tuple[ShardInfo, ...]
    """The shard files in order (training reads rows in this order before shuffling)."""
    documents: int
    """Documents (pages) tokenised into this split."""
    document_tokens: int
    """Tokens of those documents, end-of-text tokens included."""
    dropped_tokens: int
    """Tokens of bucket tails too short to fill a row, not stored."""
    buckets: int
    """Hash buckets the split's pages were spread over (one shard sequence each)."""

    @property
    def sequences(self) -> int:
        """Rows over all shards."""
        return sum(s.sequences for s in self.shards)

    @property
    def tokens(self) -> int:
        """Tokens stored over all shards."""
        return sum(s.tokens for s in self.shards)


@dataclass(frozen=True)
class TokenizerInfo:
    """The tokenizer the shards were made with (``tokenizer.json`` in the folder)."""

    path: str
    """Path relative to the dataset folder (``tokenizer.json``)."""
    sha256: str
    """Hex sha256 of the tokenizer file."""
    trained: bool
    """True when featurise trained it; False when it was given (``--tokenizer``)."""
    given: str | None
    """The given tokenizer's path or URI, or None."""
    sample_bytes: int
    """Cap on the training text it was trained on, in bytes (0 when given)."""
    tokens_per_byte: float
    """Tokens per UTF-8 byte on a sample of the training text (rounded to 6 digits)."""


@dataclass(frozen=True)
class PagesSource:
    """The pages table the shards were made from."""

    path: str
    """Path or URI of the pages folder."""
    stats_sha256: str
    """Hex sha256 of its ``_stats.json`` bytes."""
    ok_pages: int
    """Pages with status ``ok`` that were tokenised."""
    status: dict[str, int]
    """Page counts per status in the pages table (from ``_stats.json``)."""
    forced_split: dict[str, str] = field(default_factory=dict)
    """Pages (``wiki:page_id``) whose split was forced so that both splits hold one."""
    val_threshold: float | None = None
    """Split hash threshold used: pages hashing below it are in ``val``. It is
    ``featurise.val_fraction``, or higher when that left validation short of its floor
    (2% of the tokens, 20 sequences; issue 17). None in manifests from before it was kept."""


@dataclass(frozen=True)
class ShardsManifest:
    """The content of ``manifest.json``."""

    block_size: int
    """Tokens per training sequence; every row holds ``block_size + 1`` tokens."""
    dtype: str
    """Token dtype of the shards: ``uint16`` or ``uint32``."""
    vocab_size: int
    """Tokenizer vocabulary size, added tokens included."""
    eot_id: int
    """Id of ``<|endoftext|>``, which ends every document."""
    splits: dict[str, SplitInfo]
    """Per split (``train``, ``val``) its shards and counts."""
    tokenizer: TokenizerInfo
    """The tokenizer file and how it was made."""
    pages: PagesSource
    """The pages table the shards came from."""
    config: dict[str, Any]
    """The resolved ``featurise`` config section (without ``out`` and ``overwrite``)."""
    code_version: str
    """``pipeline.__version__`` of the code that wrote the shards."""
    format: str = FORMAT
    """Always :data:`FORMAT`."""
    format_version: int = FORMAT_VERSION
    """Always :data:`FORMAT_VERSION` for what this code writes and reads."""

    @property
    def row_length(self) -> int:
        """Tokens per row: ``block_size + 1``."""
        return self.block_size + 1

    def totals(self) -> dict[str, int]:
        """Sums over the splits: sequences, tokens, documents, document and dropped tokens."""
        keys = ("sequences", "tokens", "documents", "document_tokens", "dropped_tokens")
        return {k: sum(getattr(s, k) for s in self.splits.values()) for k in keys}

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the fields, plus derived ``row_length``, per-split
        ``sequences``/``tokens`` and ``totals`` for readers without this code."""
        out = asdict(self)
        out["row_length"] = self.row_length
        for name, split in self.splits.items():
            out["splits"][name]["sequences"] = split.sequences
            out["splits"][name]["tokens"] = split.tokens
        out["totals"] = self.totals()
        return json.loads(json.dumps(out))  # plain JSON types: lists, not tuples

    def to_json(self) -> bytes:
        """The bytes of ``manifest.json`` (the one writer)."""
        return (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> ShardsManifest:
        """Parse and validate ``manifest.json`` bytes (the one reader).

        Args:
            raw: the file's bytes.
            where: the file's path or URI, for messages.

        Raises:
            ManifestError: not JSON; another format; version 1 or another version; a
                missing or mistyped field; a derived count that does not match its shards;
                a path that is absolute or leaves the dataset folder.
        """
        data = versioned_object(
            raw,
            where,
            fmt=FORMAT,
            version=FORMAT_VERSION,
            what="shards manifest",
            rerun="re-run `pipeline featurise` with this code into a new folder",
            error=ManifestError,
        )
        r = _Reader(data, where)
        splits = {}
        for name, sd in r.get("splits", dict).items():
            if name not in SPLITS:
                raise ManifestError(f"{where}: unknown split {name!r} (expected {SPLITS})")
            s = _Reader(sd, f"{where}: splits.{name}")
            shards = tuple(
                ShardInfo(
                    path=safe_relative(x.get("path", str), x.where),
                    sequences=x.get("sequences", int),
                    tokens=x.get("tokens", int),
                    bytes=x.get("bytes", int),
                    sha256=x.get("sha256", str),
                )
                for x in (
                    _Reader(v, f"{where}: splits.{name}.shards[{i}]")
                    for i, v in enumerate(s.get("shards", list))
                )
            )
            splits[name] = SplitInfo(
                shards=shards,
                documents=s.get("documents", int),
                document_tokens=s.get("document_tokens", int),
                dropped_tokens=s.get("dropped_tokens", int),
                buckets=s.get("buckets", int),
            )
        t = _Reader(r.get("tokenizer", dict), f"{where}: tokenizer")
        p = _Reader(r.get("pages", dict), f"{where}: pages")
        m = cls(
            block_size=r.get("block_size", int),
            dtype=r.get("dtype", str),
            vocab_size=r.get("vocab_size", int),
            eot_id=r.get("eot_id", int),
            splits=splits,
            tokenizer=TokenizerInfo(
                path=safe_relative(t.get("path", str), t.where),
                sha256=t.get("sha256", str),
                trained=t.get("trained", bool),
                given=t.get("given", (str, type(None))),
                sample_bytes=t.get("sample_bytes", int),
                tokens_per_byte=float(t.get("tokens_per_byte", (int, float))),
            ),
            pages=PagesSource(
                path=p.get("path", str),
                stats_sha256=p.get("stats_sha256", str),
                ok_pages=p.get("ok_pages", int),
                status=p.get("status", dict),
                forced_split=p.get("forced_split", dict),
                val_threshold=(
                    p.get("val_threshold", (int, float, type(None)))
                    if "val_threshold" in p.data
                    else None
                ),
            ),
            config=r.get("config", dict),
            code_version=r.get("code_version", str),
        )
        if m.dtype not in DTYPES:
            raise ManifestError(f"{where}: dtype {m.dtype!r} is not uint16 or uint32")
        if m.block_size < 1 or m.vocab_size < 1 or not 0 <= m.eot_id < m.vocab_size:
            raise ManifestError(
                f"{where}: block_size {m.block_size}, vocab_size {m.vocab_size} and eot_id "
                f"{m.eot_id} are inconsistent"
            )
        for name, split in m.splits.items():
            for shard in split.shards:
                if shard.tokens != shard.sequences * m.row_length:
                    raise ManifestError(
                        f"{where}: splits.{name} shard {shard.path}: tokens {shard.tokens} is "
                        f"not sequences {shard.sequences} x row length {m.row_length}"
                    )
        return m


class _Reader:
    """Typed access to one JSON object, naming the file and field on error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
        self.data, self.where = data, where

    def get(self, key: str, tp: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise ManifestError(f"{self.where}: missing field {key!r}")
        value = self.data[key]
        types = tp if isinstance(tp, tuple) else (tp,)
        # JSON true is not a count: bool is an int subclass in Python
        ok = isinstance(value, types) and (bool in types or not isinstance(value, bool))
        if not ok:
            names = " or ".join(t.__name__ for t in types)
            raise ManifestError(
                f"{self.where}: field {key!r} must be {names}, got {type(value).__name__}"
            )
        return value


def safe_relative(path: str, where: str) -> str:
    """``path`` if it is a plain relative path inside the dataset folder.

    Raises:
        ManifestError: empty, absolute, a URI, not normalised, or leaving the folder
            (``..``); the manifest may have been tampered with.
    """
    norm = posixpath.normpath(path) if path else ""
    if not path or path.startswith("/") or "://" in path or norm.startswith("..") or norm != path:
        raise ManifestError(
            f"{where}: path {path!r} is not a plain relative path inside the dataset "
            "folder; the manifest may have been tampered with"
        )
    return path
