"""Tokenizer and split keys of the featurise stage: pure Python, no Spark.

* Split, bucket and tokenizer-sample decisions come from the sha256 of the page key
  ``"<wiki>:<page_id>"``, so a page's split never changes when other pages are added or
  removed. :func:`key_fractions` is the Python reference of the Spark expressions in
  :mod:`pipeline.spark.featurise_stage` (a test checks they agree).
* The tokenizer is a Hugging Face ``tokenizers`` byte-level BPE (GPT-2 style pre-tokenizer
  and decoder) with the special token ``<|endoftext|>``, or a given ``tokenizer.json``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pipeline.shards.format import EOT, ShardError

# hex digits of sha256(key) used for each decision: [0, 15) split, [15, 30) bucket,
# [30, 45) tokenizer sample. 15 hex digits = 60 bits, exact in Spark's conv() and a double.
HEX_DIGITS = 15
_SCALE = float(16**HEX_DIGITS)


def page_key(wiki: str, page_id: int) -> str:
    """The stable key of a page: ``"<wiki>:<page_id>"``."""
    return f"{wiki}:{page_id}"


def key_fractions(wiki: str, page_id: int) -> tuple[float, int, float]:
    """Return ``(split_fraction, bucket_hash, sample_fraction)`` of a page.

    ``split_fraction`` and ``sample_fraction`` are in ``[0, 1)``; ``bucket_hash`` is a
    60-bit integer (the bucket is ``bucket_hash % n_buckets``). All three are read from
    ``sha256(page_key)`` as three 15-hex-digit slices.
    """
    digest = hashlib.sha256(page_key(wiki, page_id).encode("utf-8")).hexdigest()
    a, b, c = (int(digest[i * HEX_DIGITS : (i + 1) * HEX_DIGITS], 16) for i in range(3))
    return a / _SCALE, b, c / _SCALE


def document(title: str | None, text: str) -> str:
    """The training text of one page: its title as a first line, a blank line, the text."""
    return f"{title}\n\n{text}" if title else text


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE on ``texts`` (GPT-2 style, no prefix space).

    The special token ``<|endoftext|>`` gets id 0; the 256 byte symbols are always in the
    vocabulary, so any text encodes. Deterministic: the same texts give the same
    ``tokenizer.json`` (the trainer breaks count ties by symbol order).

    Raises:
        ShardError: ``vocab_size`` below 257 (bytes plus end-of-text).
    """
    if vocab_size < 257:
        raise ShardError(f"vocab_size {vocab_size} is below 257 (256 bytes + {EOT})")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def check_tokenizer(tok: Tokenizer, where: str) -> int:
    """Return the end-of-text id of ``tok``.

    Raises:
        ShardError: the vocabulary has no ``<|endoftext|>`` token, naming ``where``.
    """
    eot = tok.token_to_id(EOT)
    if eot is None:
        raise ShardError(
            f"{where}: the tokenizer has no {EOT} token; add it as a special token or let "
            "featurise train a tokenizer (featurise.tokenizer=null)"
        )
    return eot


def load_tokenizer(data: bytes, where: str) -> Tokenizer:
    """Parse a ``tokenizer.json`` given as bytes.

    Raises:
        ShardError: not a valid ``tokenizers`` file, naming ``where``.
    """
    try:
        return Tokenizer.from_str(data.decode("utf-8"))
    except (UnicodeDecodeError, Exception) as e:  # tokenizers raises bare Exception
        raise ShardError(f"{where}: not a Hugging Face tokenizer.json ({e})") from None


def set_task_threads(cores: int) -> None:
    """Size the tokenizer's thread pool to the ``cores`` of the Spark task calling it.

    ``tokenizers`` encodes batches on a Rayon pool that defaults to one thread per core of
    the machine; with N Spark tasks per machine that is N x cores threads competing for
    N cores (measured: ``local[2]`` slower than ``local[1]``). The pool is built on its
    first use in a process and reads ``RAYON_NUM_THREADS`` then, so this must run before
    the process's first encode (Spark's Python workers run one task at a time and keep the
    same task cores). A ``RAYON_NUM_THREADS`` or ``TOKENIZERS_PARALLELISM`` already in the
    environment is kept. With one core the batch is encoded serially
    (``TOKENIZERS_PARALLELISM=false``: no pool at all).
    """
    cores = max(int(cores), 1)
    os.environ.setdefault("RAYON_NUM_THREADS", str(cores))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if cores > 1 else "false")


def encode_documents(tok: Tokenizer, docs: list[str], eot_id: int) -> Iterator[list[int]]:
    """Yield the token ids of each document followed by ``eot_id`` (batch encoding)."""
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        ids = enc.ids
        ids.append(eot_id)
        yield ids


def sample_texts(rows: Iterable[tuple[str | None, str]], cap_bytes: int) -> Iterator[str]:
    """Yield documents from ``(title, text)`` rows until ``cap_bytes`` UTF-8 bytes are reached.

    The document that crosses the cap is cut at the cap (on a character boundary), so the
    sample never exceeds it.
    """
    used = 0
    for title, text in rows:
        doc = document(title, text)
        raw = doc.encode("utf-8")
        if used + len(raw) >= cap_bytes:
            yield raw[: cap_bytes - used].decode("utf-8", errors="ignore")
            return
        used += len(raw)
        yield doc
