"""Text normalisation, exact-duplicate hashes, word shingles, MinHash and LSH bands.

Pure functions on strings and NumPy arrays (no Spark); every value depends only on the
text and the parameters, so the stage's output does not depend on Spark's parallelism.

MinHash (Broder 1997, "On the resemblance and containment of documents"): a shingle set
``S`` maps to ``k`` minima ``min_{x in S} h_i(x)`` of universal hashes
``h_i(x) = (a_i * x + b_i) mod (2**61 - 1)`` with fixed seeds; two sets agree on one
minimum with probability equal to their Jaccard similarity. LSH banding (Leskovec,
Rajaraman, Ullman, "Mining of Massive Datasets", 3.4) hashes ``bands`` groups of ``rows``
minima; documents sharing a band hash are candidate pairs.

Speed (benchmarks/curate.py): a document is normalised once (:func:`normalise`) and both
its exact hash and its words come from that (:func:`exact_hash_of`, :func:`words_of`);
words are split with C-level string methods rather than a regular expression, and
MinHash evaluates all ``k`` hashes on all shingles as one NumPy ``uint64`` array with
the Mersenne-prime reduction done by shifts and masks instead of ``%``.
"""

from __future__ import annotations

import hashlib
import unicodedata
import zlib

import numpy as np

_MERSENNE_INT = (1 << 61) - 1
_MERSENNE = np.uint64(_MERSENNE_INT)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT61 = np.uint64(61)
_SEED = 20211208  # fixed: signatures are part of the output's determinism
_CHUNK = 256  # shingles per block of the (hashes x shingles) product: fits in L2 cache
# bytes.translate table: ASCII non-word characters (not [A-Za-z0-9_]) to space; the
# bytes of multi-byte UTF-8 characters (all >= 0x80) kept
_ASCII_WORDS = bytes(c if (chr(c).isalnum() or c == ord("_")) else 32 for c in range(128))
_ASCII_WORDS += bytes(range(128, 256))
_ASCII = bytes(range(128))


def normalise(text: str) -> str:
    """Unicode NFC, case-folded, whitespace runs collapsed to one space and stripped.

    ``" ".join(s.split())`` collapses exactly the characters the regular expression
    ``\\s+`` matches in a ``str`` pattern (both use ``str.isspace``)."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def exact_hash_of(norm: str) -> str:
    """Hex blake2b-128 of an already normalised text (32 hex digits)."""
    return hashlib.blake2b(norm.encode("utf-8"), digest_size=16).hexdigest()


def exact_hash(text: str) -> str:
    """Hex blake2b-128 of :func:`normalise` ``(text)`` (32 hex digits): the exact-dedup key."""
    return exact_hash_of(normalise(text))


def words_of(norm: str) -> list[bytes]:
    """UTF-8 bytes of the word tokens of an already normalised text: the maximal runs of
    word characters, exactly what the regular expression ``\\w+`` finds (a character is
    a word character when ``str.isalnum()`` or it is ``_``, as in Python's ``re``)."""
    data = norm.encode("utf-8").translate(_ASCII_WORDS)
    if not norm.isascii():
        # UTF-8 is self-synchronising: a character's bytes occur only where it does
        for c in set(data.translate(None, _ASCII).decode("utf-8")):
            if not (c.isalnum() or c == "_"):
                data = data.replace(c.encode("utf-8"), b" ")
    return data.split()


def words(text: str) -> list[str]:
    """Word tokens (``\\w+`` runs) of the normalised text, for shingles."""
    return [w.decode("utf-8") for w in words_of(normalise(text))]


def shingles_of(toks: list[bytes], n: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word ``n``-grams of UTF-8 word tokens
    (:func:`words_of`), as a uint64 array; see :func:`shingles`."""
    if not toks:
        return np.zeros(0, dtype=np.uint64)
    wh = np.fromiter(map(zlib.crc32, toks), np.uint64, len(toks))
    n = min(n, len(wh))
    with np.errstate(over="ignore"):
        h = np.zeros(len(wh) - n + 1, dtype=np.uint64)
        for j in range(n):
            h = h * np.uint64(1_000_003) + wh[j : len(wh) - n + 1 + j]
        h = (h ^ (h >> np.uint64(32))) & _MASK32
    h.sort()
    if len(h) > 1:
        h = h[np.concatenate(([True], h[1:] != h[:-1]))]
    return h


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word ``n``-grams of ``text`` (uint64 array).

    A text shorter than ``n`` words gives one shingle of all its words; an empty text
    gives an empty array. Word hashes are CRC-32 of the UTF-8 word; an n-gram's hash is
    a polynomial of its word hashes modulo 2**64, folded to 32 bits.
    """
    return shingles_of(words_of(normalise(text)), n)


def _params(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(_SEED))
    a = rng.integers(1, 1 << 32, size=k, dtype=np.uint64)
    b = rng.integers(0, 1 << 32, size=k, dtype=np.uint64)
    return a, b


_PARAMS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def minhash(shingle_hashes: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` MinHash values (uint32 array of length ``k``) of a shingle-hash set.

    An empty set gives ``k`` times ``0xFFFFFFFF``. ``a*x + b`` stays below 2**64 because
    ``a``, ``b`` and ``x`` are below 2**32; ``v mod (2**61 - 1)`` is computed as
    ``(v & M) + (v >> 61)`` (at most ``M + 7``; congruent to ``v`` because
    ``2**61 = M + 1``) minus ``M`` when that is ``>= M`` (``min(r, r - M)`` in wrapping
    ``uint64``): exactly ``v % M``, without NumPy's slow 64-bit division.
    """
    if k not in _PARAMS:
        a, b = _params(k)
        _PARAMS[k] = (a[:, None], b[:, None])
    a, b = _PARAMS[k]
    out = np.full(k, 0xFFFFFFFF, dtype=np.uint64)
    for start in range(0, len(shingle_hashes), _CHUNK):
        x = shingle_hashes[None, start : start + _CHUNK]
        v = a * x
        v += b
        r = v & _MERSENNE
        v >>= _SHIFT61
        r += v
        np.minimum(r, r - _MERSENNE, out=r)  # r - M wraps above r unless r >= M
        r &= _MASK32
        np.minimum(out, r.min(axis=1), out=out)
    return out.astype(np.uint32)


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit hash per band of ``rows`` consecutive MinHash values
    (blake2b-64 of the band's bytes with the band index), ``bands`` values."""
    data = signature[: bands * rows].astype("<u4").tobytes()
    step = rows * 4
    out = []
    for i in range(bands):
        d = hashlib.blake2b(
            data[i * step : (i + 1) * step], digest_size=8, person=i.to_bytes(4, "little") * 4
        )
        out.append(int.from_bytes(d.digest(), "little", signed=True))
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity ``|A ∩ B| / |A ∪ B|`` of two sorted unique hash arrays (1.0 when
    both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
