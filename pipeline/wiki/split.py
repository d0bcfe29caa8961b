"""Splitting one dump file into tasks: single-stream bz2 at block boundaries, plain XML by
byte ranges.

The rule (the one Hadoop's ``LineRecordReader``/XML record readers and its splittable
``BZip2Codec`` use): a task gets compressed bytes ``[start, end)``; it owns the pages
whose ``<page>`` tag starts in the data it owns, and reads past ``end`` only to finish
the last of them. Every page is read by exactly one task, whatever the split size.

- Plain ``.xml``: a task owns the bytes ``[start, end)`` of the file.
- bz2 (https://sourceware.org/bzip2/, format notes in Seward's ``bzip2`` sources and
  Joe Tsai's "BZip2 format specification"): a stream is ``BZh`` + level digit, then
  blocks, each starting with the 48-bit magic ``0x314159265359`` (BCD pi) at any bit
  position, then its 32-bit CRC; the stream ends with ``0x177245385090`` (BCD sqrt(pi)),
  the combined CRC and padding to a byte. A task owns the blocks whose magic starts at a
  bit inside ``[8*start, 8*end)``. Each block is decoded on its own: its bits are copied
  into a one-block stream (``BZh9`` + block + end magic + the block's CRC, which is the
  combined CRC of a one-block stream), which ``bz2`` decodes and CRC-checks, so a false
  magic inside compressed data (odds 2**-48 per bit) is caught, not trusted.

Pages are found in the decompressed bytes by the literal ``<page>``: XML character data
escapes ``<``, so the bytes ``<page>`` only occur as the tag (dumps use no CDATA). Only
UTF-8/ASCII dumps are split (found from the BOM and XML declaration); others, and files
below :data:`MIN_SPLIT_BYTES`, are read by one task.
"""

from __future__ import annotations

import bz2
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from typing import Any

from pipeline.fs import filesystem
from pipeline.wiki.xmlpages import DumpError, PageReader

MIN_SPLIT_BYTES = 64 << 10
"""Smallest split: below it a task's overhead outweighs its work (tests lower it)."""
CHUNK = 1 << 20  # bytes read at a time
HEAD_LIMIT = 64 << 20  # most decompressed bytes read on the driver to find the header
PAGE_TAG = b"<page>"
BLOCK_MAGIC = 0x314159265359
END_MAGIC = 0x177245385090
MAX_BLOCK_BYTES = 2 << 20  # a compressed block is under ~1 MB (900k level 9 + overhead)
_DECL_ENCODING = re.compile(rb"<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']")


def _patterns(magic: int) -> list[tuple[int, bytes, int, int, int, int]]:
    """For each bit shift k in 0..7: (k, core bytes, core offset, first byte, first mask,
    last byte/mask packed) of the 48-bit ``magic`` starting at bit k of a byte."""
    out = []
    for k in range(8):
        nbytes = (k + 48 + 7) // 8
        pad = nbytes * 8 - 48 - k
        b = (magic << pad).to_bytes(nbytes, "big")
        if k == 0:
            out.append((k, b, 0, 0, 0, 0))
        else:
            last_mask = (0xFF << pad) & 0xFF
            out.append((k, b[1:-1], 1, b[0], 0xFF >> k, (b[-1] << 8) | last_mask))
    return out


_BLOCK = _patterns(BLOCK_MAGIC)
_END = _patterns(END_MAGIC)


def find_magic(buf: bytes, patterns, from_bit: int, to_byte: int) -> int | None:
    """Smallest bit position ``>= from_bit`` where the magic of ``patterns`` starts in
    ``buf`` and ends before byte ``to_byte``; None if there is none."""
    best: int | None = None
    for k, core, off, first, first_mask, last in patterns:
        i = max(from_bit // 8 - 1, 0) + off
        while True:
            i = buf.find(core, i, to_byte - (1 if off else 0))
            if i == -1:
                break
            start = i - off
            bit = start * 8 + k
            if (
                start >= 0
                and bit >= from_bit
                and (
                    not off
                    or (
                        buf[start] & first_mask == first & first_mask
                        and buf[i + len(core)] & (last & 0xFF) == last >> 8
                    )
                )
            ):
                if best is None or bit < best:
                    best = bit
                break
            i += 1
    return best


def decode_block(buf: bytes, p: int, q: int) -> bytes:
    """Decompress the bz2 block whose bits are ``[p, q)`` of ``buf`` (magic included).

    Raises:
        OSError: the bits are not one valid block (bad CRC, truncated, false magic).
    """
    first, last = p // 8, (q + 7) // 8
    seg = int.from_bytes(buf[first:last], "big")
    nbits = q - p
    seg = (seg >> (8 * (last - first) - (q - 8 * first))) & ((1 << nbits) - 1)
    if nbits < 80:
        raise OSError("bz2 block too short")
    crc = (seg >> (nbits - 80)) & 0xFFFFFFFF
    total = nbits + 80
    pad = -total % 8
    stream = ((((seg << 48) | END_MAGIC) << 32) | crc) << pad
    try:
        return bz2.decompress(b"BZh9" + stream.to_bytes((total + pad) // 8, "big"))
    except ValueError as e:  # "ended before the end-of-stream marker": truncated
        raise OSError(str(e)) from None


class _Window:
    """A sliding window of a file's bytes, ``data`` holding bytes from ``base`` on."""

    def __init__(self, f: Any, size: int, base: int) -> None:
        self.f, self.size, self.base, self.data = f, size, base, b""

    def ensure(self, upto: int) -> None:
        """Hold at least the bytes up to file byte ``upto`` (or EOF)."""
        have = self.base + len(self.data)
        if upto > have and have < self.size:
            n = min(max(upto - have, CHUNK), self.size - have)
            self.data += self.f.read_at(n, have)

    def drop_before(self, byte: int) -> None:
        if byte > self.base:
            self.data = self.data[byte - self.base :]
            self.base = byte


def bz2_units(f: Any, size: int, start: int, end: int, pos: list[int]):
    """Yield ``(decompressed block, owned)`` for the blocks from the first one whose magic
    starts in ``[start, end)``; blocks past ``end`` come as not owned (the caller stops
    pulling). ``pos[0]`` is kept at the compressed byte being read.

    Raises:
        OSError: a block that does not decode (corrupt or truncated input).
    """
    w = _Window(f, size, start)
    w.ensure(start + MAX_BLOCK_BYTES)
    p = find_magic(w.data, _BLOCK, 0, len(w.data))
    p = None if p is None else p + 8 * w.base
    while p is not None:
        owned = p < 8 * end
        if not owned and pos[1] == 0:
            return  # owns no block at all
        w.drop_before(p // 8)
        pos[0] = p // 8
        w.ensure(p // 8 + MAX_BLOCK_BYTES)
        rel = p - 8 * w.base
        nxt = find_magic(w.data, _BLOCK, rel + 48, len(w.data))
        # a stream end can only come before the next block: search no further
        upto = len(w.data) if nxt is None else min(nxt // 8 + 7, len(w.data))
        stop = find_magic(w.data, _END, rel + 48, upto)
        q = min(x for x in (nxt, stop, 8 * len(w.data)) if x is not None)
        try:
            data = decode_block(w.data, rel, q)
        except (OSError, ValueError) as e:
            raise OSError(f"bz2 block at bit {p} does not decode: {e}") from None
        if not pos[1]:
            pos[2] = p // 8
        pos[1] += 1
        yield data, owned
        if q == nxt:
            p = q + 8 * w.base
        elif q == stop:  # end of a stream: another may follow (concatenated streams)
            w.drop_before(w.base + (q + 80) // 8)
            w.ensure(w.base + MAX_BLOCK_BYTES)
            nb = find_magic(w.data, _BLOCK, 0, len(w.data))
            p = None if nb is None else nb + 8 * w.base
        else:
            p = None


def xml_units(f: Any, size: int, start: int, end: int, pos: list[int]):
    """Yield ``(bytes, owned)`` chunks of a plain XML file from ``start``; owned up to
    ``end``, then past it until the caller stops pulling."""
    at = start
    while at < size:
        n = min(CHUNK, (end - at) if at < end else CHUNK, size - at)
        pos[0] = at
        data = f.read_at(n, at)
        if not data:
            break
        yield data, at < end
        at += len(data)
    pos[0] = at


def fragment_bytes(
    units: Iterable[tuple[bytes, bool]], mark: list[int] | None = None
) -> Iterator[bytes]:
    """The bytes of the pages a task owns, from ``units`` (``(data, owned)`` in order,
    owned ones first): from the first ``<page>`` starting in owned data to the first
    ``<page>`` starting after it (or the end of the input). ``mark`` gets the position
    in the units' bytes where the first page starts."""
    keep = len(PAGE_TAG) - 1
    w, w_start = b"", 0  # bytes not yet emitted, and the stream position of w[0]
    owned_end: int | None = None  # stream position where owned data ends, once known
    emitting = False
    for data, owned in units:
        if not owned and owned_end is None:
            owned_end = w_start + len(w)
        w += data
        limit = owned_end if owned_end is not None else None
        if not emitting:
            i = w.find(PAGE_TAG)
            if i != -1 and (limit is None or w_start + i < limit):
                emitting = True
                w_start, w = w_start + i, w[i:]
                if mark is not None:
                    mark.append(w_start)
            elif i != -1 or (limit is not None and w_start + len(w) >= limit + keep):
                return  # no page starts in the owned data
            else:
                cut = max(len(w) - keep, 0)
                w_start, w = w_start + cut, w[cut:]
                continue
        if limit is not None:
            j = w.find(PAGE_TAG, max(limit - w_start, 0))
            if j != -1:
                if j:
                    yield w[:j]
                return
        cut = max(len(w) - keep, 0)
        if cut:
            yield w[:cut]
            w_start, w = w_start + cut, w[cut:]
    if emitting and w:
        yield w


def _head(f: Any, size: int, compressed: bool) -> bytes:
    """Decompressed bytes from the file's start through its first ``<page>`` (or up to
    :data:`HEAD_LIMIT` bytes / the whole file when there is none)."""
    out = b""
    dec = bz2.BZ2Decompressor() if compressed else None
    at = scanned = 0
    while at < size and len(out) < HEAD_LIMIT:
        if out.find(PAGE_TAG, max(scanned - len(PAGE_TAG), 0)) != -1:
            break
        scanned = len(out)
        raw = f.read_at(min(1 << 16, size - at), at)
        at += len(raw)
        if dec is None:
            out += raw
        else:
            if dec.eof:
                dec = bz2.BZ2Decompressor()
            out += dec.decompress(raw)
            while dec.eof and dec.unused_data:  # concatenated streams (multistream)
                rest, dec = dec.unused_data, bz2.BZ2Decompressor()
                out += dec.decompress(rest)
    return out


def _utf8(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00<", b"<\x00")):
        return False
    m = _DECL_ENCODING.search(head[:200])
    return m is None or m.group(1).lower() in (b"utf-8", b"utf8", b"us-ascii", b"ascii")


def plan_split(uri: str, name: str, size: int, split_bytes: int) -> list[dict[str, Any]] | None:
    """Tasks splitting one ``.xml`` or single-stream ``.bz2`` file, or None when it is read
    whole (small, not UTF-8, no ``<page>`` in its head). Task dicts as in
    :mod:`pipeline.wiki.sources`, ``kind`` ``"bz2_split"`` or ``"xml_split"``, with the
    file's ``siteinfo`` read here from its header.

    Raises:
        DumpError: the header cannot be read (corrupt compression or XML).
    """
    split = max(split_bytes, MIN_SPLIT_BYTES)
    compressed = name.endswith(".bz2")
    if size <= split or not (compressed or name.endswith(".xml")):
        return None
    fs, path = filesystem(uri)
    try:
        with fs.open_input_file(path) as f:
            head = _head(f, size, compressed)
    except (OSError, EOFError) as e:
        raise DumpError(uri, f"corrupt compressed data in the header ({e})") from None
    i = head.find(PAGE_TAG)
    if i == -1 or not _utf8(head):
        return None
    reader = PageReader(uri)
    reader.feed(head[:i])  # the header only: no close()
    siteinfo = asdict(reader.siteinfo)
    kind = "bz2_split" if compressed else "xml_split"
    bounds = list(range(0, size, split)) + [size]
    return [
        {
            "task": -1,
            "source": uri,
            "name": name,
            "kind": kind,
            "start": a,
            "end": b,
            "expected_pages": None,
            "siteinfo": siteinfo,
        }
        for a, b in zip(bounds, bounds[1:], strict=False)
    ]


class SplitStream:
    """File-like ``read(n)`` over the owned pages' bytes of a split task; ``tell()`` is the
    compressed byte being read (``end`` once the task is done)."""

    def __init__(self, f: Any, size: int, task: dict[str, Any]) -> None:
        self._pos = [task["start"], 0, task["start"]]  # now, blocks read, start of part
        self._end = task["end"]
        make = bz2_units if task["kind"] == "bz2_split" else xml_units
        self._mark: list[int] = []  # where the first page starts in the decoded bytes
        units = make(f, size, task["start"], task["end"], self._pos)
        self._parts = fragment_bytes(units, self._mark)
        self._buf = b""
        self._done = False
        self._kind = task["kind"]

    def read(self, n: int = -1) -> bytes:
        while not self._buf and not self._done:
            try:
                self._buf = next(self._parts)
            except StopIteration:
                self._done = True

        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def origin(self) -> str:
        """Where this task's bytes start, for error positions."""
        skip = self._mark[0] if self._mark else 0
        if self._kind == "bz2_split":
            return (
                f"the part starting {skip} uncompressed bytes into the bz2 block at "
                f"compressed byte {self._pos[2]}"
            )
        return f"the part from file byte {self._pos[2] + skip}"

    def tell(self) -> int:
        return self._end if self._done else self._pos[0]
