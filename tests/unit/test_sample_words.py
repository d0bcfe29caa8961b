"""The demo's measures on real shards (enwiki-10k): words of a sample found in the training
text, and the decoding guard against runs of empty lines."""

from __future__ import annotations

import re

import torch

from models.gpt import GPT
from models.gpt_config import GPTConfig
from pipeline.shards.format import TOKENIZER, load_manifest
from pipeline.shards.tokenize import load_tokenizer
from pipeline.train.export import no_blank_line_runs
from pipeline.train.sample_words import (
    match_words,
    summary_line,
    training_vocabulary,
    validation_prompt,
    word_key,
)
from tests.support.training import _texts, real_shards


def test_word_key_strips_surrounding_punctuation_only() -> None:
    assert word_key("(Paris),") == "Paris"
    assert word_key("U.S.") == "U.S"
    assert word_key("«Zürich»") == "Zürich"
    assert word_key("==") == "=="  # all punctuation: its own key
    assert word_key("self-governed") == "self-governed"


def test_training_words_are_found_and_others_are_not() -> None:
    vocabulary = training_vocabulary(str(real_shards()))
    texts = _texts()
    n_val = max(2, len(texts) // 10)
    # The first training document's words, minus those the last row dropped.
    words = texts[0].split()[:200]
    assert match_words(" ".join(words), vocabulary).fraction == 1.0
    first = word_key(words[0])
    m = match_words(f"{first}, zqxv (flurbogast) the.", vocabulary)
    assert (m.found, m.words) == (2, 4) and m.fraction == 0.5
    assert match_words("", vocabulary).fraction == 0.0
    # A validation document holds words the training text lacks.
    held_out = " ".join(texts[-n_val:]).split()
    assert match_words(" ".join(held_out), vocabulary).fraction < 1.0
    # A cap of a few tokens reads only the start of the first shard.
    assert len(training_vocabulary(str(real_shards()), max_tokens=50)) < 60
    line = summary_line(f"{first} zqxv", str(real_shards()), "The")
    assert line == (
        "sample:   50% of the generated words occur in the training text (1 of 2; prompt: 'The')"
    )


def test_the_prompt_is_the_start_of_the_first_validation_page() -> None:
    texts = _texts()
    page = texts[-max(2, len(texts) // 10)]  # real_shards' first validation document
    title, _, body = page.partition("\n\n")
    prompt = validation_prompt(str(real_shards()), words=6)
    assert prompt.startswith(f"{title}\n\n") and len(prompt.split()) > len(title.split())
    words = prompt.partition("\n\n")[2].split()
    assert 2 <= len(words) <= 6 and words == body.split()[: len(words)]
    assert summary_line("x", str(real_shards()), prompt).endswith(
        f'prompt: the start of validation page "{title}")'
    )


def test_no_blank_line_runs_bans_a_third_newline_only() -> None:
    root = real_shards()
    m = load_manifest(str(root))
    tok = load_tokenizer((root / TOKENIZER).read_bytes(), "t")
    process = no_blank_line_runs(tok)
    nl = tok.encode("\n").ids
    assert len(nl) == 1
    text_ids = tok.encode("The state\n\n").ids
    logits = torch.zeros(2, m.vocab_size)
    idx = torch.tensor([text_ids, tok.encode("The state of\n").ids[-len(text_ids) :]])
    out = process(idx, logits)
    assert out[0, nl[0]] == float("-inf") and out[1, nl[0]] == 0  # 2 newlines vs 1
    assert torch.isfinite(out[0]).sum() > m.vocab_size // 2  # words stay allowed
    assert torch.equal(logits, torch.zeros(2, m.vocab_size))  # the input is not changed
    # A model that wants newlines gets at most two in a row.
    model = GPT(GPTConfig(n_layer=1, n_head=1, n_embd=8, block_size=16, vocab_size=m.vocab_size))

    def favour_newline(idx: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return process(idx, logits.index_add(1, torch.tensor(nl), torch.full((1, 1), 50.0)))

    start = torch.tensor([tok.encode("The").ids])
    out = model.generate(start, 12, temperature=0.0, logits_processor=favour_newline)
    text = tok.decode(out[0].tolist())
    assert text.count("\n") >= 4 and not re.search(r"\n[ \t]*\n[ \t]*\n", text)
