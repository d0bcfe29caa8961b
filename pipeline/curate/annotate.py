"""Per-document curate work on Arrow batches: the functions the Spark stage ships to
executors through ``mapInArrow`` (each unit-tested without Spark).

- :func:`annotate_batches`: exact hash, language, language and quality verdicts and
  LSH band hashes of each ``ok`` page.
- :func:`verify_batches`: real Jaccard similarity of candidate pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.curate import lang as langid
from pipeline.curate import text as textmod
from pipeline.curate.config import CurateConfig, QualityConfig
from pipeline.curate.quality import quality_failure

ANNOTATION_SCHEMA = pa.schema(
    [
        ("rid", pa.int64()),
        ("norm_hash", pa.string()),
        ("lang", pa.string()),
        ("lang_score", pa.float64()),
        ("pre_status", pa.string()),
        ("pre_reason", pa.string()),
        ("bands", pa.list_(pa.int64())),
    ]
)
"""What :func:`annotate_batches` returns per document: ``rid`` (the row id it was given),
the exact-dedup hash, ``lang``/``lang_score``, ``pre_status`` (``language``,
``quality`` or null), ``pre_reason`` (the rule's detail, or a language-mismatch note on a
kept document) and the LSH band hashes (empty when near dedup is off or the document is
already removed)."""
PAIR_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("jaccard", pa.float64())])
"""What :func:`verify_batches` returns: the candidate pairs at or above the threshold."""


@dataclass(frozen=True)
class CurateOptions:
    """The plain values the executors need (no Spark, no session)."""

    near_dedup: bool = True
    shingle_words: int = 2
    bands: int = 20
    rows: int = 5
    languages: tuple[str, ...] = ()
    language_mismatch: str = "flag"
    lang_min_chars: int = 200
    quality: QualityConfig = field(default_factory=QualityConfig)

    @classmethod
    def from_config(cls, c: CurateConfig) -> CurateOptions:
        """The options of a :class:`CurateConfig`."""
        return cls(
            near_dedup=c.near_dedup,
            shingle_words=c.shingle_words,
            bands=c.minhash_bands,
            rows=c.minhash_rows,
            languages=tuple(c.languages),
            language_mismatch=c.language_mismatch,
            lang_min_chars=c.lang_min_chars,
            quality=c.quality,
        )


def judge_language(
    lang: str | None, score: float, wiki: str | None, chars: int, opts: CurateOptions
) -> tuple[str | None, str | None]:
    """``(status, reason)`` of a document's language: status ``language`` when it is to
    be removed, else None with a mismatch note (or None) as the reason."""
    if chars < opts.lang_min_chars:
        return None, None
    if opts.languages and lang not in opts.languages:
        return "language", f"language: {lang} not in {list(opts.languages)} ({score:.2f})"
    expected = langid.wiki_language(wiki)
    if expected is not None and lang is not None and lang != expected:
        reason = f"lang_mismatch: detected {lang} ({score:.2f}), {wiki} is {expected}"
        return ("language", reason) if opts.language_mismatch == "drop" else (None, reason)
    return None, None


def annotate(text: str, wiki: str | None, opts: CurateOptions) -> dict[str, Any]:
    """The annotation of one ``ok`` page (the fields of :data:`ANNOTATION_SCHEMA` but
    ``rid``)."""
    lang, score = langid.detect(text)
    status, reason = judge_language(lang, score, wiki, len(text), opts)
    if status is None:
        failed = quality_failure(text, lang, opts.quality)
        if failed is not None:
            status, reason = "quality", failed
    norm = textmod.normalise(text)  # once: the exact hash and the shingles share it
    bands: list[int] = []
    if status is None and opts.near_dedup:
        sh = textmod.shingles_of(textmod.words_of(norm), opts.shingle_words)
        sig = textmod.minhash(sh, opts.bands * opts.rows)
        bands = textmod.band_hashes(sig, opts.bands, opts.rows)
    return {
        "norm_hash": textmod.exact_hash_of(norm),
        "lang": lang,
        "lang_score": score,
        "pre_status": status,
        "pre_reason": reason,
        "bands": bands,
    }


def annotate_batches(
    batches: Iterable[pa.RecordBatch], opts: CurateOptions
) -> Iterator[pa.RecordBatch]:
    """Annotate batches of ``(rid, wiki, text)`` rows (``ok`` pages); yield batches of
    :data:`ANNOTATION_SCHEMA`, one row per input row, in input order."""
    for batch in batches:
        rids = batch.column("rid").to_pylist()
        wikis = batch.column("wiki").to_pylist()
        texts = batch.column("text").to_pylist()
        rows = [
            {"rid": r, **annotate(t or "", w, opts)}
            for r, w, t in zip(rids, wikis, texts, strict=True)
        ]
        yield pa.RecordBatch.from_pylist(rows, ANNOTATION_SCHEMA)


def verify_batches(
    batches: Iterable[pa.RecordBatch], shingle_words: int, threshold: float
) -> Iterator[pa.RecordBatch]:
    """Real Jaccard of candidate pairs: batches of ``(a, b, a_text, b_text)`` in, batches
    of :data:`PAIR_SCHEMA` out holding the pairs whose similarity is >= ``threshold``."""
    for batch in batches:
        cols = [batch.column(n).to_pylist() for n in ("a", "b", "a_text", "b_text")]
        rows = []
        for a, b, ta, tb in zip(*cols, strict=True):
            j = textmod.jaccard(
                textmod.shingles(ta or "", shingle_words), textmod.shingles(tb or "", shingle_words)
            )
            if j >= threshold:
                rows.append({"a": a, "b": b, "jaccard": round(j, 6)})
        yield pa.RecordBatch.from_pylist(rows, PAIR_SCHEMA)
