"""Config of the curate stage: :class:`CurateConfig` and its :class:`QualityConfig`.

Defaults are conservative: on Wikipedia articles they remove exact and near copies and
documents that are clearly not prose, and keep nearly everything else. Each quality
threshold names the paper it comes from; ``null`` turns a rule off.

- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
  Training Gopher", arXiv:2112.11446, appendix A.1.1 ("quality filters") and table A1
  ("repetition removal").
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
  Text-to-Text Transformer", JMLR 21(140), section 2.2 ("Colossal Clean Crawled Corpus").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class QualityConfig:
    """Document-level quality rules (``curate.quality.*``); a ``null`` threshold is off."""

    enabled: bool = True
    """Apply the quality rules at all."""
    min_words: int | None = 20
    """Fewer whitespace-separated words fail (``quality: words``). Gopher uses 50; the
    default is lower because short Wikipedia stubs are real articles."""
    max_words: int | None = 100_000
    """More words fail (Gopher: 100,000)."""
    min_mean_word_length: float | None = 3.0
    """Mean word length (characters) below this fails (Gopher: 3)."""
    max_mean_word_length: float | None = 10.0
    """Mean word length above this fails (Gopher: 10)."""
    max_symbol_word_ratio: float | None = 0.1
    """``#`` plus ellipses (``...``, ``…``) per word above this fails (Gopher: 0.1)."""
    max_ellipsis_line_fraction: float | None = 0.3
    """Fraction of non-empty lines ending in an ellipsis above this fails (Gopher: 0.3)."""
    max_bullet_line_fraction: float | None = 0.9
    """Fraction of non-empty lines starting with a bullet (``•``, ``-``, ``*``, ``‣``)
    above this fails (Gopher: 0.9)."""
    min_stop_words: int | None = 2
    """English documents (detected ``lang`` = ``en``) with fewer distinct Gopher stop
    words (the, be, to, of, and, that, have, with) fail (Gopher: 2)."""
    max_no_terminal_punct_line_fraction: float | None = None
    """Fraction of non-empty lines not ending in terminal punctuation (``. ! ? "``)
    above this fails. C4 drops such lines rather than documents; off by default because
    headings and list items of encyclopaedic text end without punctuation."""
    lorem_ipsum: bool = True
    """Documents containing "lorem ipsum" fail (C4)."""
    curly_brace: bool = False
    """Documents containing ``{`` fail (C4, against code). Off by default: articles about
    programming and mathematics quote braces."""
    max_dup_line_fraction: float | None = 0.3
    """Fraction of lines that duplicate an earlier line above this fails (Gopher: 0.3)."""
    max_dup_paragraph_fraction: float | None = 0.3
    """Same for paragraphs (blank-line separated) (Gopher: 0.3)."""
    max_dup_line_char_fraction: float | None = 0.2
    """Characters in duplicated lines over all characters above this fails (Gopher: 0.2)."""
    max_dup_paragraph_char_fraction: float | None = 0.2
    """Same for paragraphs (Gopher: 0.2)."""
    max_top_ngram_char_fraction: list[float] = field(default_factory=lambda: [0.2, 0.18, 0.16])
    """For n = 2, 3, 4: characters covered by the most frequent word n-gram over all word
    characters above the n-th value fails (Gopher: 0.20, 0.18, 0.16). Empty: off."""
    max_dup_ngram_char_fraction: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )
    """For n = 5 … 10: characters covered by word n-grams occurring more than once over
    all word characters above the value fails (Gopher: 0.15 … 0.10). Empty: off."""

    def __post_init__(self) -> None:
        for name in ("min_words", "max_words", "min_stop_words"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 or null, got {v}")
        fractions = (
            "max_symbol_word_ratio",
            "max_ellipsis_line_fraction",
            "max_bullet_line_fraction",
            "max_no_terminal_punct_line_fraction",
            "max_dup_line_fraction",
            "max_dup_paragraph_fraction",
            "max_dup_line_char_fraction",
            "max_dup_paragraph_char_fraction",
        )
        for name in fractions:
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] or null, got {v}")
        if len(self.max_top_ngram_char_fraction) > 3:
            raise ValueError("max_top_ngram_char_fraction takes at most 3 values (n = 2, 3, 4)")
        if len(self.max_dup_ngram_char_fraction) > 6:
            raise ValueError("max_dup_ngram_char_fraction takes at most 6 values (n = 5 … 10)")
        for v in (*self.max_top_ngram_char_fraction, *self.max_dup_ngram_char_fraction):
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"n-gram fractions must be in [0, 1], got {v}")


@dataclass
class CurateConfig:
    """Curate stage: ``pages/`` to the ``curated/`` table (dedup, language ID, quality)."""

    enabled: bool = True
    """Run the stage in ``pipeline run`` (featurise then reads ``curated/``); false skips
    it and featurise reads ``pages/``."""
    pages: str | None = None
    """Input pages folder; null means ``<work_dir>/pages``."""
    out: str | None = None
    """Output folder; null means ``<work_dir>/curated``."""
    exact_dedup: bool = True
    """Remove exact duplicates: same text after Unicode NFC, case folding and whitespace
    collapsing. The smallest ``(wiki, page_id)`` of a group is kept."""
    near_dedup: bool = True
    """Remove near duplicates found by MinHash LSH and checked by real Jaccard."""
    near_dup_threshold: float = 0.8
    """Jaccard similarity of word-shingle sets at or above which two documents are near
    duplicates (GPT-3 and datatrove use MinHash LSH with a similar threshold)."""
    shingle_words: int = 2
    """Words per shingle (word n-gram) for MinHash and Jaccard. Measured on real articles
    (benchmarks/curate.py): with 2, a copy with 5% of its words replaced keeps Jaccard
    about 0.82, reordered paragraphs 0.97, while unrelated articles stay below 0.1; with
    5 (datatrove's default) a 5% edit already falls to about 0.64."""
    minhash_bands: int = 20
    """LSH bands; with ``minhash_rows`` rows each, ``bands * rows`` MinHash values per
    document. A pair of Jaccard ``s`` becomes a candidate with probability
    ``1 - (1 - s**rows)**bands`` (Leskovec, Rajaraman, Ullman, Mining of Massive
    Datasets, 3.4): 0.9996 at s = 0.8 for 20 x 5."""
    minhash_rows: int = 5
    """MinHash values per band."""
    max_component_rounds: int = 40
    """Most rounds of min-label propagation for the connected components of near
    duplicates; the stage fails (naming this key) if the labels still change."""
    languages: list[str] = field(default_factory=list)
    """Detected languages (ISO 639-1 codes, e.g. ``[en, de]``) to keep; empty keeps any
    (``lang`` is recorded either way). Others get ``curate_status`` ``language``."""
    language_mismatch: Literal["flag", "drop"] = "flag"
    """A document whose detected language differs from its wiki's language (``dewiki``
    → ``de``): ``flag`` keeps it with a ``curate_reason``; ``drop`` removes it (status
    ``language``). Only documents of at least ``lang_min_chars`` characters are judged."""
    lang_min_chars: int = 200
    """Shorter documents are never removed or flagged for their language (the detector
    is unreliable on a few words); ``lang`` is still recorded."""
    quality: QualityConfig = field(default_factory=QualityConfig)
    """Quality rules."""
    overwrite: bool = False
    """Replace an existing output folder, which must be a previous curate output (it
    holds the ``_pipeline_output.json`` marker); only its own files are deleted."""

    def __post_init__(self) -> None:
        if not 0.0 < self.near_dup_threshold <= 1.0:
            raise ValueError(f"near_dup_threshold must be in (0, 1], got {self.near_dup_threshold}")
        if self.shingle_words < 1:
            raise ValueError(f"shingle_words must be >= 1, got {self.shingle_words}")
        if self.minhash_bands < 1 or self.minhash_rows < 1:
            raise ValueError(
                f"minhash_bands and minhash_rows must be >= 1, got "
                f"{self.minhash_bands} and {self.minhash_rows}"
            )
        if self.minhash_bands * self.minhash_rows > 1024:
            raise ValueError("minhash_bands * minhash_rows must be <= 1024")
        if self.max_component_rounds < 1:
            raise ValueError(f"max_component_rounds must be >= 1, got {self.max_component_rounds}")
        if self.lang_min_chars < 0:
            raise ValueError(f"lang_min_chars must be >= 0, got {self.lang_min_chars}")
        for code in self.languages:
            if not (code.isascii() and code.isalpha() and code.islower()) or len(code) > 3:
                raise ValueError(
                    f"languages: {code!r} is not an ISO 639 code like en or de (lower case)"
                )
