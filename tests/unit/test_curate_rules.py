"""Curate's quality rules and language identification on real pages of the shared samples
(English articles, the multilingual dbpedia minidumps), and the curate config."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.curate import lang
from pipeline.curate.annotate import CurateOptions, judge_language
from pipeline.curate.config import QualityConfig
from pipeline.curate.quality import STOP_WORDS, dup_ngram_char_fraction, quality_failure
from pipeline.stage_config import load_config
from pipeline.wiki.clean import clean_wikitext
from tests.support.curate_data import EN, real_articles
from tests.support.samples import read_sample

Q = QualityConfig()


@pytest.fixture(scope="module")
def articles(wiki_data: Path) -> list[tuple[int, str, str]]:
    return real_articles(wiki_data / EN, 30, min_chars=400)


def minidump_text(wiki_data: Path, code: str) -> str:
    _, pages = read_sample(wiki_data / "dbpedia-minidumps" / f"{code}.xml.bz2")
    texts = [clean_wikitext(p.text or "", title=p.title).text for p in pages if p.ns == 0]
    return max(texts, key=len)


def rule(text: str, language: str | None = "en", q: QualityConfig = Q) -> str | None:
    failed = quality_failure(text, language, q)
    return failed.split(":")[0] if failed else None


def test_real_articles_pass_the_default_rules(articles) -> None:
    failed = {title: quality_failure(text, "en", Q) for _, title, text in articles}
    failed = {k: v for k, v in failed.items() if v}
    assert len(failed) <= len(articles) // 10, failed


def test_each_rule_catches_its_damage_on_real_text(articles) -> None:
    text = articles[0][2]
    lines = [ln for ln in text.split("\n") if len(ln) > 40]
    assert rule(" ".join(text.split()[:10])) == "words"
    assert rule(text + "\n\nLorem ipsum dolor sit amet.") == "lorem_ipsum"
    assert rule(text + " {") is None  # curly brace is off by default
    assert rule(text + " {", q=QualityConfig(curly_brace=True)) == "curly_brace"
    assert rule("\n".join([lines[0]] * 2 + lines[1:4] * 3)) in ("dup_lines", "dup_paragraphs")
    assert rule("\n".join("- " + ln for ln in lines[:12])) == "bullet_lines"
    assert rule("\n".join(ln + " ..." for ln in lines[:12])) == "ellipsis_lines"
    assert rule(" ".join("#" + w for w in text.split()[:200])) == "symbol_word_ratio"
    letters = " ".join(w[:1] for w in text.split()[:300])
    assert rule(letters) == "mean_word_length"
    # the real text without Gopher's stop words fails, as English only
    stopless = " ".join(w for w in text.split() if w.lower() not in STOP_WORDS)
    assert rule(stopless) == "stop_words" and rule(stopless, language="de") is None
    words = text.split()[:60]
    looped = " ".join(words * 4)
    assert rule(looped, q=QualityConfig(max_dup_line_fraction=None)) in ("top_ngram", "dup_ngram")


def test_dup_ngram_fraction_counts_each_word_once() -> None:
    import zlib

    import numpy as np

    toks = "a b c d e a b c d e x".split()
    lens = np.ones(len(toks), dtype=np.int64)
    wh = np.array([zlib.crc32(w.encode()) for w in toks], dtype=np.uint64)
    assert dup_ngram_char_fraction(toks, lens, wh, 5) == pytest.approx(10 / 11)
    assert dup_ngram_char_fraction(toks, lens, wh, 6) == 0.0


def test_null_thresholds_turn_rules_off(articles) -> None:
    short = " ".join(articles[0][2].split()[:10])
    assert rule(short, q=QualityConfig(min_words=None, min_stop_words=None)) is None
    assert rule(short, q=QualityConfig(enabled=False)) is None


@pytest.mark.parametrize("code", ["de", "fr", "ru", "el", "zh", "ko", "ar"])
def test_language_of_real_articles(wiki_data: Path, code: str) -> None:
    text = minidump_text(wiki_data, code)
    assert len(text) >= 200
    detected, score = lang.detect(text)
    assert detected == code and score > 0.5


def test_wiki_language_names() -> None:
    assert lang.wiki_language("enwiki") == "en"
    assert lang.wiki_language("simplewiki") == "en"
    assert lang.wiki_language("elwikivoyage") == "el"
    assert lang.wiki_language("be_x_oldwiki") == "be"
    assert lang.wiki_language("wikidatawiki") is None
    assert lang.wiki_language("commonswiki") is None
    assert lang.wiki_language("dump") is None


def test_language_verdicts(wiki_data: Path) -> None:
    german = minidump_text(wiki_data, "de")
    code, score = lang.detect(german)
    flag = CurateOptions()
    status, reason = judge_language(code, score, "enwiki", len(german), flag)
    assert status is None and reason and reason.startswith("lang_mismatch: detected de")
    drop = CurateOptions(language_mismatch="drop")
    assert judge_language(code, score, "enwiki", len(german), drop)[0] == "language"
    assert judge_language(code, score, "dewiki", len(german), drop) == (None, None)
    only_en = CurateOptions(languages=("en",))
    assert judge_language(code, score, "dewiki", len(german), only_en)[0] == "language"
    assert judge_language(code, score, "enwiki", 50, only_en) == (None, None)  # too short


def test_curate_config_validation() -> None:
    cfg = load_config(overrides=["curate.languages=[en, de]", "curate.quality.min_words=null"])
    assert cfg.curate.languages == ["en", "de"] and cfg.curate.quality.min_words is None
    assert cfg.paths.curated.endswith("curated") and cfg.paths.curate_pages.endswith("pages")
    with pytest.raises(ConfigError, match="near_dup_threshold"):
        load_config(overrides=["curate.near_dup_threshold=1.5"])
    with pytest.raises(ConfigError, match="not an ISO 639 code"):
        load_config(overrides=["curate.languages=[English]"])
    with pytest.raises(ConfigError, match="max_dup_line_fraction"):
        load_config(overrides=["curate.quality.max_dup_line_fraction=2"])
    with pytest.raises(ConfigError, match="unknown config key 'curate.quality.nope'"):
        load_config(overrides=["curate.quality.nope=1"])


def test_vectorised_language_scan_matches_the_models_own_classify(wiki_data: Path) -> None:
    """The NumPy scan (:class:`pipeline.curate.lang._Scanner`) gives py3langid's exact
    ``(language, probability)`` on real pages of many languages, whole and cut short."""
    model = lang._identifier()
    scanner = lang._scanner()
    texts = [minidump_text(wiki_data, c) for c in ("de", "fr", "ru", "el", "zh", "ko", "ar", "hi")]
    texts += ["", "1234 5678", "ABC DEF", "x"]
    checked = 0
    for text in texts:
        for head in (text[: lang.LANG_PREFIX_CHARS], text[:300], text[:5]):
            assert scanner.classify(head) == model.classify(head), head[:40]
            checked += 1
    assert checked == 36


def test_known_automaton_depth_is_the_searched_one() -> None:
    """The stored depth of the installed model equals a breadth-first search of it (a
    smaller value would make the vectorised scan wrong)."""
    scanner = lang._scanner()
    searched = lang.automaton_depth(scanner.nextmove, scanner.rowbase)
    assert searched == scanner.depth == 6
