"""Per-page guards: no page's markup may hang or exhaust a parse task.

mwparserfromhell's C tokenizer never looks at the cleaner's time guard, and some shapes
make it (or the cleaner's own text passes) quadratic or worse: unclosed ``{{a|`` runs,
200,000 nested ``{{``, long runs of unclosed ``[[a|``, ``<span>`` or ``[http://a``; a
100,000-row table takes 500 MB of tokens. Two guards bound every page:

1. :func:`prescan`, a deterministic scan costing a few string counts, rejects the known
   pathological shapes before anything is tokenized (nesting of ``{{`` or ``[[`` deeper
   than :data:`MAX_NESTING`, tables of more than :data:`MAX_TABLE_ROWS` rows).
2. :class:`PageWorker`, a forked child process kept for a whole task, cleans the pages
   the pre-scan let through, a batch at a time (:data:`BATCH_PAGES` pages or
   :data:`BATCH_CHARS` characters of wikitext per round trip), while the task reads the
   next batch (:meth:`PageWorker.submit`, :meth:`PageWorker.collect`: the two processes
   overlap, as WikiExtractor's reader and extract processes do). The kernel bounds each page: before
   a page the child arms a CPU-time timer (``ITIMER_PROF``, ``timeout_s`` +
   :data:`GRACE_S`) whose signal (``SIGPROF``, default action: terminate) kills it,
   the C tokenizer included. The child records which page it is on in a few bytes of
   shared memory, so the parent, blocked on the batch's reply, knows the page that
   killed it, gives it ``time guard: …`` and sends the batch's other pages to a fresh
   child. The child's address space is capped (``RLIMIT_AS``), so one page cannot take
   the executor's memory; it dies with its parent (``PR_SET_PDEATHSIG`` on Linux) and is
   reaped on :meth:`PageWorker.close`. Cost: one round trip per batch and a timer system
   call per page, 15-30 µs of the parent's CPU per page of the shared samples (mostly
   pickling; 2-3% of cleaning them), against 85 µs for a round trip per page
   (``benchmarks/page_guard.py``).

A rejected page gets status ``parse_error`` and one of these errors (prefix first):
``nesting too deep: …``, ``table too large: …``, ``time guard: …``, ``memory guard: …``,
``worker died: …`` (the child died twice on the page, e.g. killed by the kernel).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import mmap
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

from pipeline.wiki.clean import CleanOptions, CleanResult, CleanTimeout, ParserError, clean_wikitext

__all__ = [
    "BATCH_CHARS",
    "BATCH_PAGES",
    "GRACE_S",
    "MAX_NESTING",
    "MAX_TABLE_ROWS",
    "PageWorker",
    "PageWorkerError",
    "batch_spans",
    "clean_or_error",
    "prescan",
]

MAX_NESTING = 256
"""Most ``{{`` (or ``[[``) open at once, unclosed ones included. The deepest page of the
shared samples (148 files, 5,487 pages) has 16 levels of ``{{`` and 3 of ``[[``, and
mwparserfromhell treats markup nested deeper than 100 as text anyway; 256 unclosed
``{{a|`` cost the tokenizer 0.02 s, 3,000 cost 4 s and 10,000 more than 20 s."""
MAX_TABLE_ROWS = 20_000
"""Most table rows (``|-`` at the start of a line) in a page. The samples' largest page has 1,259;
the tokenizer needs about 5 kB and 30 µs per row (100,000 rows: 500 MB, 3 s)."""
BATCH_PAGES = 64
"""Most pages sent to the worker in one round trip. A round trip costs the parent about
50 µs of CPU on the 2-core development VM (pickling, two wake-ups), a small sample page
about 700 µs to clean: per page, 64 pages make the round trip's share about 0.1%."""
BATCH_CHARS = 4 << 20
"""Most characters of wikitext per round trip (a batch holds at least one page, however
large). Bounds what the parent and the child hold besides the page being cleaned."""
GRACE_S = 0.25
"""CPU seconds a page may take past ``timeout_s`` before the kernel stops it: the
cleaner's own time guard (``CleanTimeout`` after ``timeout_s`` of the thread's CPU) gets
to fire first on pages it can stop, which keeps the child (no restart)."""

Cleaned = tuple[CleanResult | None, str | None]  # what cleaning one page gives

_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct("<Q")  # message length
_PROGRESS = struct.Struct("<qd")  # the child's page in the batch (-1: none yet), its CPU s then
_BACKSTOP_S = 1.0  # CPU s past the timer after which the parent kills the child itself


def _depth(wikitext: str, opener: str, closer: str) -> int:
    """Most ``opener`` open at once in ``wikitext`` (a stray closer does not go below 0);
    one substring count per closer, rather than a Python step per bracket."""
    depth = most = 0
    for part in wikitext.split(closer):
        depth += part.count(opener)
        most = max(most, depth)
        depth = max(0, depth - 1)
    return most


def prescan(wikitext: str) -> str | None:
    """Return why ``wikitext`` is too pathological to tokenize, or None if it is not.

    Deterministic and cheap: a substring count per shape on ordinary pages (a page
    cannot nest deeper than it has openers, nor hold more rows than it has characters),
    a nesting scan only for pages with more than :data:`MAX_NESTING` openers. Limits:
    :data:`MAX_NESTING`, :data:`MAX_TABLE_ROWS`.

    Returns:
        ``"nesting too deep: 200000 levels of {{ (limit 256)"``, ``"table too large:
        100000 rows (limit 20000)"``, or None.
    """
    for opener, closer in (("{{", "}}"), ("[[", "]]")):
        if wikitext.count(opener) > MAX_NESTING:
            depth = _depth(wikitext, opener, closer)
            if depth > MAX_NESTING:
                return f"nesting too deep: {depth} levels of {opener} (limit {MAX_NESTING})"
    # A row takes at least 3 characters ("\n|-"): short pages cannot hold too many.
    rows = wikitext.count("\n|-") if len(wikitext) > 3 * MAX_TABLE_ROWS else 0
    if rows > MAX_TABLE_ROWS:
        return f"table too large: {rows} rows (limit {MAX_TABLE_ROWS})"
    return None


def clean_or_error(
    wikitext: str, options: CleanOptions, title: str | None = None
) -> tuple[CleanResult | None, str | None]:
    """:func:`~pipeline.wiki.clean.clean_wikitext` (``title`` for ``{{PAGENAME}}``), with a
    page's own failures as a value.

    Returns:
        ``(result, None)``, or ``(None, "ParserError: …")`` for mwparserfromhell's
        ``ParserError``, the cleaner's ``CleanTimeout`` or a ``RecursionError``. Anything
        else is a bug and propagates.
    """
    try:
        return clean_wikitext(wikitext, options, title=title), None
    except (ParserError, CleanTimeout, RecursionError) as e:
        return None, f"{type(e).__name__}: {e}"


def batch_spans(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Split pages of ``sizes`` (characters) into consecutive ``(start, stop)`` batches of
    at most :data:`BATCH_PAGES` pages and :data:`BATCH_CHARS` characters (or one larger
    page)."""
    spans, start, chars = [], 0, 0
    for i, size in enumerate(sizes):
        if i > start and (i - start >= BATCH_PAGES or chars + size > BATCH_CHARS):
            spans.append((start, i))
            start, chars = i, 0
        chars += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


class PageWorkerError(RuntimeError):
    """Cleaning raised an unexpected exception (a bug) in the worker; holds its traceback."""


class PageWorker:
    """A child process that cleans pages in batches under hard CPU and memory limits.

    Started on the first :meth:`clean_batch` (a ``fork`` of the calling process, a few ms)
    and kept for the following pages; a page past a limit costs the child, and the rest of
    its batch goes to a fresh one. Use as a context manager or call :meth:`close`, from
    the thread that created it (a Linux child dies when the thread that forked it ends).

    Args:
        timeout_s: CPU seconds one page may take in the child. The kernel stops the page
            at ``timeout_s + GRACE_S`` (:data:`GRACE_S`; ``ITIMER_PROF``, exact to a clock
            tick). Should the timer fail, the parent, waking every ``poll_s`` wall
            seconds while a batch runs, kills the child once the page is one more second
            of CPU past it (a backstop: normally the parent only blocks on the reply).
        memory_bytes: address space the child may add to what it had when forked
            (``RLIMIT_AS``; Linux only, other systems have no per-page memory bound). The
            batch in hand (at most :data:`BATCH_CHARS` of wikitext, with its copies)
            counts against it.

    Raises:
        ValueError: ``timeout_s``, ``memory_bytes`` or ``poll_s`` not positive.
    """

    def __init__(self, timeout_s: float, memory_bytes: int, poll_s: float = 1.0):
        if timeout_s <= 0 or memory_bytes <= 0 or poll_s <= 0:
            raise ValueError(
                f"timeout_s, memory_bytes and poll_s must be > 0, got "
                f"{timeout_s}, {memory_bytes}, {poll_s}"
            )
        self.timeout_s, self.memory_bytes, self.poll_s = timeout_s, memory_bytes, poll_s
        self.pid: int | None = None
        self.starts = 0  # children forked so far
        self._chan: _Channel | None = None
        self._progress: mmap.mmap | None = None  # shared with the child: _PROGRESS
        self._options: CleanOptions | None = None  # the options the child holds
        self._pending: _Pending | None = None  # the batch submitted, not yet collected

    @staticmethod
    def available() -> bool:
        """Whether this platform can fork and time a process's CPU (not Windows)."""
        return hasattr(os, "fork") and hasattr(signal, "ITIMER_PROF")

    def __enter__(self) -> PageWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self, wikitext: str, options: CleanOptions, title: str | None = None) -> Cleaned:
        """Clean one page in the child (a batch of one: a round trip per page; prefer
        :meth:`clean_batch`). See :meth:`clean_batch` for the results and errors."""
        return self.clean_batch([wikitext], options, [title])[0]

    def clean_batch(
        self,
        wikitexts: Sequence[str],
        options: CleanOptions,
        titles: Sequence[str | None] | None = None,
    ) -> list[Cleaned]:
        """Clean pages in the child, one round trip per batch (:func:`batch_spans`);
        ``titles`` (one per page, or None) feed ``{{PAGENAME}}``.

        Returns:
            Per page, in order, what :func:`clean_or_error` returns, or ``(None, reason)``
            when a guard stopped it: ``time guard: over Ns of CPU`` (N is ``timeout_s``),
            ``memory guard: over N MiB of memory``, ``worker died: …`` (the child died on
            the page twice, e.g. killed by the OOM killer).

        Raises:
            PageWorkerError: cleaning raised something other than a page's own failure.
        """
        self.submit(wikitexts, options, titles)
        return self.collect()

    def submit(
        self,
        wikitexts: Sequence[str],
        options: CleanOptions,
        titles: Sequence[str | None] | None = None,
    ) -> None:
        """Start cleaning a batch of pages in the child and return at once, so that the
        caller reads the next pages while the child cleans these; :meth:`collect` gives
        the results. ``submit`` then ``collect`` is :meth:`clean_batch`.

        Raises:
            PageWorkerError: a batch is already submitted and not collected.
        """
        if self._pending is not None:
            raise PageWorkerError("submit: the batch submitted before is not collected yet")
        pages = list(zip(wikitexts, titles or [None] * len(wikitexts), strict=True))
        spans = batch_spans([len(t) for t in wikitexts])
        sent = bool(spans) and self._send(pages, list(range(*spans[0])), options)
        self._pending = _Pending(pages, spans, options, [None] * len(pages), sent)

    def collect(self) -> list[Cleaned]:
        """The results of the batch given to :meth:`submit` (as :meth:`clean_batch`
        returns them), waiting for the child to finish it.

        Raises:
            PageWorkerError: nothing was submitted, or cleaning raised something other
                than a page's own failure.
        """
        batch, self._pending = self._pending, None
        if batch is None:
            raise PageWorkerError("collect: no batch was submitted")
        for n, (start, stop) in enumerate(batch.spans):
            todo = list(range(start, stop))
            self._run(batch.pages, todo, batch.options, batch.results, batch.sent and n == 0)
        return batch.results  # type: ignore[return-value]  # every page has its result

    def _send(
        self, pages: Sequence[tuple[str, str | None]], todo: list[int], options: CleanOptions
    ) -> bool:
        """Send the pages ``todo`` to the child, started (or restarted with ``options``)
        first if need be; False if the child is gone."""
        if self.pid is not None and options is not self._options and options != self._options:
            self._reap(wait_s=1.0)  # the child holds the options it was forked with
        if self.pid is None:
            self._start(options)
        _, chan, progress = self._live()
        _PROGRESS.pack_into(progress, 0, -1, 0.0)
        try:
            chan.send(pickle.dumps([pages[j] for j in todo], pickle.HIGHEST_PROTOCOL))
        except OSError:  # the child is gone
            return False
        return True

    def _run(
        self,
        pages: Sequence[tuple[str, str | None]],
        todo: list[int],
        options: CleanOptions,
        results: list[Cleaned | None],
        sent: bool = False,
    ) -> None:
        """Fill ``results[j]`` for every ``j`` in ``todo``, restarting the child as needed;
        ``sent``: the pages ``todo`` are already with the child."""
        deaths: dict[int, int] = {}
        while todo:
            if not sent:
                sent = self._send(pages, todo, options)
            progress = self._live()[2]
            try:
                reply = self._wait() if sent else None
            except (EOFError, OSError):  # the child is gone
                reply = None
            sent = False
            if reply is not None:
                done, last = reply
                for j, (fields, error) in zip(todo, done, strict=False):
                    results[j] = (None if error else CleanResult(*fields)), error
                del todo[: len(done)]
                if last is None:
                    continue
                self._reap(wait_s=1.0)  # the child exits after a failure: memory or bug
                if last[0] != "memory":
                    raise PageWorkerError(f"cleaning failed in the page worker:\n{last[1]}")
                mib = self.memory_bytes / 2**20
                results[todo.pop(0)] = None, f"memory guard: over {mib:g} MiB of memory"
                continue
            k = _PROGRESS.unpack_from(progress)[0]
            how = self._reap(wait_s=1.0) if self.pid is not None else "killed by the time guard"
            if not 0 <= k < len(todo):  # not on a page (between batches): blame the first
                k = 0
            elif how in ("killed by SIGPROF", "killed by the time guard"):
                results[todo.pop(k)] = None, f"time guard: over {self.timeout_s:g}s of CPU"
                continue
            deaths[todo[k]] = deaths.get(todo[k], 0) + 1  # e.g. the OOM killer: one more try
            if deaths[todo[k]] >= 2:
                results[todo.pop(k)] = None, f"worker died: {how}"

    def _wait(self) -> tuple | None:
        """The child's reply to a batch, or None once the backstop killed it (a page more
        than ``timeout_s + GRACE_S + _BACKSTOP_S`` of CPU in, the timer not having fired).

        Raises:
            EOFError: the child died.
        """
        pid, chan, progress = self._live()
        while (message := chan.recv()) is None:  # no reply within poll_s
            k, started = _PROGRESS.unpack_from(progress)
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                raise EOFError from None
            if k >= 0 and times.user + times.system - started > self._limit_s + _BACKSTOP_S:
                self._kill()
                return None
        # Trusted bytes: pickled by the child this object forked, never by the input.
        return pickle.loads(message)

    def _live(self) -> tuple[int, _Channel, mmap.mmap]:
        """The running child's pid, channel and progress block.

        Raises:
            PageWorkerError: no child is running (a bug of this class's callers).
        """
        if self.pid is None or self._chan is None or self._progress is None:
            raise PageWorkerError("the page worker has no running child")
        return self.pid, self._chan, self._progress

    @property
    def _limit_s(self) -> float:
        return self.timeout_s + GRACE_S

    def _start(self, options: CleanOptions) -> None:
        parent, child = socket.socketpair()
        progress = mmap.mmap(-1, _PROGRESS.size)  # anonymous, shared with the child
        ppid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never return into the caller's code
            code = 1
            try:
                parent.close()
                _child_setup(ppid, child.fileno(), self.memory_bytes)
                _serve(_Channel(child), options, progress, self._limit_s)
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.pid, self._chan, self.starts = pid, _Channel(parent, self.poll_s), self.starts + 1
        self._progress, self._options = progress, options

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._live()[0], signal.SIGKILL)
        self._reap()

    def _reap(self, wait_s: float = 0.0) -> str:
        """Forget the child after waiting for its exit (up to ``wait_s``, then SIGKILL);
        return how it ended."""
        pid, chan, _ = self._live()
        self.pid = None
        chan.sock.close()
        deadline = time.monotonic() + wait_s
        try:
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() >= deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                    status = os.waitpid(pid, 0)[1]
                    break
                time.sleep(0.002)
        except ChildProcessError:  # already reaped (SIGCHLD ignored by the caller)
            return "exited"
        if os.WIFSIGNALED(status):
            return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
        return f"exit code {os.waitstatus_to_exitcode(status)}"

    def close(self) -> None:
        """End the child (it exits when its socket closes; killed if it does not within a
        second, at once if a batch submitted was not collected) and reap it. Safe to call
        twice."""
        abandoned, self._pending = self._pending is not None, None
        if self.pid is not None:
            self._reap(wait_s=0.0 if abandoned else 1.0)


@dataclass
class _Pending:
    """A batch given to :meth:`PageWorker.submit`: its ``(wikitext, title)`` pages, their
    round trips (:func:`batch_spans`), the results so far, whether the first is sent."""

    pages: list[tuple[str, str | None]]
    spans: list[tuple[int, int]]
    options: CleanOptions
    results: list[Cleaned | None]
    sent: bool


def _child_setup(ppid: int, keep_fd: int, memory_bytes: int) -> None:
    """In the forked child: die with the parent, keep only stdio and its socket, ignore
    ^C (the parent handles it), let ``SIGPROF`` terminate, cap the address space."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != ppid:  # the parent died before prctl took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # the time guard: terminate, no core dump
    gc.freeze()  # the parent's objects: never collected (or finalized) here
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, max(keep_fd + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/statm") as f:  # Linux: address space now, in pages
            now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        limit = now + memory_bytes
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _out_of_memory(e: BaseException | None) -> bool:
    """Whether ``e`` is, or was caused by, a MemoryError."""
    seen = 0
    while e is not None and seen < 20:
        if isinstance(e, MemoryError):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


class _Channel:
    """Length-prefixed messages over one end of a socket pair, with one system call per
    small message each way.

    Args:
        sock: a connected, blocking stream socket.
        timeout_s: with it, :meth:`recv` returns None when no data came for that long
            (``SO_RCVTIMEO``, so waiting and reading are the same call).
    """

    def __init__(self, sock: socket.socket, timeout_s: float | None = None) -> None:
        self.sock = sock
        self.buf = bytearray(1 << 16)  # grows to the largest message
        if timeout_s is not None:
            sec, usec = divmod(max(1000, round(timeout_s * 1e6)), 10**6)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", sec, usec))

    def send(self, payload: bytes) -> None:
        """Send one message (header and payload in one call when small)."""
        header = _HEADER.pack(len(payload))
        if len(payload) <= 1 << 16:
            self.sock.sendall(header + payload)
        else:
            self.sock.sendall(header)
            self.sock.sendall(payload)

    def recv(self) -> memoryview | None:
        """One message (a view of the buffer, valid until the next call), or None if the
        receive timeout passed first (a message begun is finished, whatever the timeout).

        Raises:
            EOFError: the other end closed.
        """
        got, need = 0, _HEADER.size
        while got < need:
            if len(self.buf) < need:
                self.buf = self.buf[:got] + bytearray(max(need, 2 * len(self.buf)) - got)
            try:
                n = self.sock.recv_into(memoryview(self.buf)[got:])
            except BlockingIOError:  # SO_RCVTIMEO expired
                if got == 0:
                    return None
                continue
            if n == 0:
                raise EOFError
            got += n
            if need == _HEADER.size and got >= need:
                need += _HEADER.unpack_from(self.buf)[0]
        return memoryview(self.buf)[_HEADER.size : need]


def _serve(chan: _Channel, options: CleanOptions, progress: mmap.mmap, limit_s: float) -> None:
    """The child's loop: a batch of pages in (a pickled list of ``(wikitext, title)``), one
    pickled reply out: ``(done, last)``, ``done`` a ``(CleanResult fields, error)`` per page cleaned
    in order, ``last`` None, or ``("memory",)`` or ``("bug", traceback)`` for the page
    after them, after which the child exits. Before each page, ``progress`` gets the
    page's index and the CPU time, and the CPU timer gets ``limit_s``: a page that takes
    longer dies by ``SIGPROF``. Returns when the parent closes its socket."""
    while True:
        try:
            message = chan.recv()
        except EOFError:
            return
        if message is None:  # no timeout is set on the child's end; nothing to do
            continue
        pages = pickle.loads(message)  # from the parent that forked this process
        del message
        done, last = [], None
        for k in range(len(pages)):
            _PROGRESS.pack_into(progress, 0, k, time.process_time())
            signal.setitimer(signal.ITIMER_PROF, limit_s)
            try:
                result, error = clean_or_error(pages[k][0], options, pages[k][1])
            except Exception as e:  # MemoryError: the C tokenizer wraps it in a SystemError
                last = ("memory",) if _out_of_memory(e) else ("bug", traceback.format_exc())
                break
            pages[k] = None
            fields = None
            if result is not None:
                rendered, dropped = result.templates_rendered, result.templates_dropped
                fields = (result.text, result.categories, rendered, dropped)
            done.append((fields, error))
            del result
        _PROGRESS.pack_into(progress, 0, len(pages), time.process_time())
        signal.setitimer(signal.ITIMER_PROF, limit_s)  # the reply, and the next batch's start
        del pages
        chan.send(pickle.dumps((done, last), pickle.HIGHEST_PROTOCOL))
        if last is not None:
            return
