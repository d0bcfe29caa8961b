"""How much of a generated sample is made of words of the training text.

The demo's measure (issue 17: at least 70% of the sample's words occur in the training
text). Definitions, used on both sides alike:

* a *word* is a whitespace-separated piece of text (``str.split()``);
* its *key* is the word with leading and trailing punctuation and symbols removed
  (Unicode categories ``P*`` and ``S*``: ``"(Paris),"`` -> ``"Paris"``), case kept; a word
  that is all punctuation or symbols (``"=="``, ``"|"``) is its own key;
* a sample word *occurs in the training text* when its key is the key of some word of
  the training text.

The training text is what the model was trained on: the ``train`` shards decoded with the
shards' tokenizer, each document (ended by ``<|endoftext|>``) on its own.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.fs import filesystem
from pipeline.shards.format import TOKENIZER, Manifest, ShardError, load_manifest, open_shard

MAX_TOKENS = 16_000_000
"""Most training tokens read for the vocabulary (about 64 MB of text): a bigger corpus is
read from its first shards only, so the fraction is then a lower bound."""


def word_key(word: str) -> str:
    """``word`` without leading and trailing punctuation or symbols (Unicode categories
    ``P*``, ``S*``), or ``word`` itself when nothing else is left."""
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        end -= 1
    return word[start:end] or word


def word_keys(text: str) -> set[str]:
    """The keys (:func:`word_key`) of the whitespace-separated words of ``text``."""
    return {word_key(w) for w in text.split()}


@dataclass(frozen=True)
class WordMatch:
    """The sample's words found in the training text."""

    found: int
    """Sample words whose key occurs in the training text."""
    words: int
    """Whitespace-separated words of the sample."""

    @property
    def fraction(self) -> float:
        """``found / words``, in [0, 1]; 0 for a sample without words."""
        return self.found / self.words if self.words else 0.0


def match_words(sample: str, vocabulary: set[str]) -> WordMatch:
    """Count the words of ``sample`` whose key (:func:`word_key`) is in ``vocabulary``
    (keys, e.g. from :func:`training_vocabulary`)."""
    words = sample.split()
    return WordMatch(sum(word_key(w) in vocabulary for w in words), len(words))


def _tokenizer(manifest: Manifest) -> Any:
    """The shards' ``tokenizers.Tokenizer``.

    Raises:
        pipeline.shards.format.ShardError: ``tokenizer.json`` does not read or load.
    """
    from pipeline.shards.tokenize import load_tokenizer

    uri = manifest.uri(TOKENIZER)
    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(path, compression=None) as f:
            return load_tokenizer(f.read(), uri)
    except OSError as e:
        raise ShardError(f"{uri} cannot be read ({e})") from None


def training_vocabulary(shards: str, max_tokens: int = MAX_TOKENS) -> set[str]:
    """The word keys of the training text: the ``train`` split of the shards folder
    ``shards`` decoded with its ``tokenizer.json``, document by document, from its first
    shard until ``max_tokens`` tokens are read.

    Raises:
        pipeline.shards.format.ShardError: the folder is not a complete shards folder, a
            shard does not read, or the tokenizer does not load.
    """
    manifest = load_manifest(shards)
    tokenizer = _tokenizer(manifest)
    eot = manifest.eot_id
    vocabulary: set[str] = set()
    read = 0
    for shard in manifest.shards.get("train", []):
        if read >= max_tokens:
            break
        column = open_shard(manifest, shard).column("tokens")
        flat = np.concatenate([np.asarray(c.flatten()) for c in column.chunks])  # (rows*(T+1),)
        flat = flat[: max_tokens - read]
        read += len(flat)
        cuts = np.flatnonzero(flat == eot)
        docs = [d for d in np.split(flat, cuts) if len(d)]
        for text in tokenizer.decode_batch([d[d != eot].tolist() for d in docs]):
            vocabulary.update(word_keys(text))
    return vocabulary


def summary_line(generated: str, shards: str, prompt: str = "") -> str | None:
    """The ``pipeline run`` summary line of a sample: ``"sample:   N% of the generated
    words occur in the training text (F of W; prompt: ...)"``, counting the words of
    ``generated`` (the continuation, without ``prompt``), or None when the shards do not
    read."""
    try:
        vocabulary = training_vocabulary(shards)
    except (ShardError, OSError, ValueError):
        return None
    m = match_words(generated, vocabulary)
    title = prompt.partition("\n")[0]
    where = f'the start of validation page "{title}"' if "\n\n" in prompt else repr(prompt)
    return (
        f"sample:   {m.fraction:.0%} of the generated words occur in the training text "
        f"({m.found} of {m.words}; prompt: {where})"
    )


def demo_sample(
    model_dir: str, shards: str, max_new_tokens: int, seed: int | None
) -> tuple[str, str | None]:
    """The sample ``pipeline run`` prints and its summary line (:func:`summary_line`).

    The model continues the start of the first validation page (:func:`validation_prompt`;
    held out from training), decoded with
    :data:`pipeline.train.export.DEMO_DECODING`; only the continuation's words count.

    Raises:
        pipeline.train.export.ExportError: the model folder does not load.
        ValueError: a shards or decoding argument is refused.
    """
    from pipeline.train.export import DEMO_DECODING, DEMO_PROMPT, generate_text

    try:
        prompt = validation_prompt(shards, fallback=DEMO_PROMPT)
    except (ShardError, OSError):
        prompt = DEMO_PROMPT
    sample = generate_text(
        model_dir, prompt, max_new_tokens=max_new_tokens, seed=seed, **DEMO_DECODING
    )
    return sample, summary_line(sample[len(prompt) :], shards, prompt)


def validation_prompt(shards: str, words: int = 8, fallback: str = "The") -> str:
    """The start of the first validation page, as a prompt: its title line, the empty line
    and the first ``words`` words of its text, up to a word opening a parenthesis (the
    pronunciation of a lead); this is how every training document starts. Read
    from the first row of the first ``val`` shard. ``fallback`` when the shards have no
    validation rows or the row does not start with a title and two words of text.

    Raises:
        pipeline.shards.format.ShardError: the folder is not a complete shards folder, or
            the shard or tokenizer does not read.
    """
    manifest = load_manifest(shards)
    val = manifest.shards.get("val", [])
    if not val or not val[0].sequences:
        return fallback
    tokenizer = _tokenizer(manifest)
    row = np.asarray(open_shard(manifest, val[0]).column("tokens").chunk(0)[0].values)
    eot = np.flatnonzero(row == manifest.eot_id)
    text = tokenizer.decode(row[: eot[0] if len(eot) else len(row)].tolist())
    title, sep, body = text.partition("\n\n")
    head = body.split()[:words]
    for i, word in enumerate(head):  # stop before a parenthesis: "X (/ˈiːks/; ...)"
        if word.startswith("("):
            head = head[:i]
            break
    if not sep or "\n" in title or len(head) < 2:
        return fallback
    return f"{title}\n\n{' '.join(head)}"
