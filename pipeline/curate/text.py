"""Text normalisation, exact-duplicate hashes, word shingles, MinHash and LSH bands.

Pure functions on strings and NumPy arrays (no Spark); every value depends only on the
text and the parameters, so the stage's output does not depend on Spark's parallelism.

MinHash (Broder 1997, "On the resemblance and containment of documents"): a shingle set
``S`` maps to ``k`` minima ``min_{x in S} h_i(x)`` of universal hashes
``h_i(x) = (a_i * x + b_i) mod (2**61 - 1)`` with fixed seeds; two sets agree on one
minimum with probability equal to their Jaccard similarity. LSH banding (Leskovec,
Rajaraman, Ullman, "Mining of Massive Datasets", 3.4) hashes ``bands`` groups of ``rows``
minima; documents sharing a band hash are candidate pairs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib

import numpy as np

_WS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_MERSENNE = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)
_SEED = 20211208  # fixed: signatures are part of the output's determinism
_CHUNK = 4096  # shingles per block of the (hashes x shingles) product: bounds memory


def normalise(text: str) -> str:
    """Unicode NFC, case-folded, whitespace runs collapsed to one space and stripped."""
    return _WS.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()


def exact_hash(text: str) -> str:
    """Hex blake2b-128 of :func:`normalise` ``(text)`` (32 hex digits): the exact-dedup key."""
    return hashlib.blake2b(normalise(text).encode("utf-8"), digest_size=16).hexdigest()


def words(text: str) -> list[str]:
    """Word tokens (``\\w+`` runs) of the normalised text, for shingles."""
    return _WORD.findall(normalise(text))


def shingles(text: str, n: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word ``n``-grams of ``text`` (uint64 array).

    A text shorter than ``n`` words gives one shingle of all its words; an empty text
    gives an empty array. Word hashes are CRC-32 of the UTF-8 word; an n-gram's hash is
    a polynomial of its word hashes modulo 2**64, folded to 32 bits.
    """
    toks = words(text)
    if not toks:
        return np.zeros(0, dtype=np.uint64)
    wh = np.fromiter((zlib.crc32(w.encode("utf-8")) for w in toks), np.uint64, len(toks))
    n = min(n, len(wh))
    with np.errstate(over="ignore"):
        h = np.zeros(len(wh) - n + 1, dtype=np.uint64)
        for j in range(n):
            h = h * np.uint64(1_000_003) + wh[j : len(wh) - n + 1 + j]
        h = (h ^ (h >> np.uint64(32))) & _MASK32
    return np.unique(h)


def _params(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(_SEED))
    a = rng.integers(1, 1 << 32, size=k, dtype=np.uint64)
    b = rng.integers(0, 1 << 32, size=k, dtype=np.uint64)
    return a, b


_PARAMS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def minhash(shingle_hashes: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` MinHash values (uint32 array of length ``k``) of a shingle-hash set.

    An empty set gives ``k`` times ``0xFFFFFFFF``. ``a*x + b`` stays below 2**64 because
    ``a``, ``b`` and ``x`` are below 2**32.
    """
    if k not in _PARAMS:
        _PARAMS[k] = _params(k)
    a, b = _PARAMS[k]
    out = np.full(k, 0xFFFFFFFF, dtype=np.uint64)
    for start in range(0, len(shingle_hashes), _CHUNK):
        x = shingle_hashes[start : start + _CHUNK]
        with np.errstate(over="ignore"):
            v = ((a[:, None] * x[None, :] + b[:, None]) % _MERSENNE) & _MASK32
        np.minimum(out, v.min(axis=1), out=out)
    return out.astype(np.uint32)


def band_hashes(signature: np.ndarray, bands: int, rows: int) -> list[int]:
    """One signed 64-bit hash per band of ``rows`` consecutive MinHash values
    (blake2b-64 of the band's bytes with the band index), ``bands`` values."""
    out = []
    for i in range(bands):
        chunk = signature[i * rows : (i + 1) * rows].astype("<u4").tobytes()
        d = hashlib.blake2b(chunk, digest_size=8, person=i.to_bytes(4, "little") * 4)
        out.append(int.from_bytes(d.digest(), "little", signed=True))
    return out


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity ``|A ∩ B| / |A ∪ B|`` of two sorted unique hash arrays (1.0 when
    both are empty)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
