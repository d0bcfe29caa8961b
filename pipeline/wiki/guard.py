"""Per-page guards: no page's markup may hang or exhaust a parse task.

mwparserfromhell's C tokenizer never looks at the cleaner's time guard, and some shapes
make it (or the cleaner's own text passes) quadratic or worse: unclosed ``{{a|`` runs,
200,000 nested ``{{``, long runs of unclosed ``[[a|``, ``<span>`` or ``[http://a``; a
100,000-row table takes 500 MB of tokens. Two guards bound every page:

1. :func:`prescan`, a deterministic scan costing a few string counts, rejects the known
   pathological shapes before anything is tokenized (nesting of ``{{`` or ``[[`` deeper
   than :data:`MAX_NESTING`, tables of more than :data:`MAX_TABLE_ROWS` rows).
2. :class:`PageWorker`, a forked child process kept for a whole task, cleans the pages
   the pre-scan let through. The parent waits on a socket pair and, while a page takes
   long, polls the child's CPU time; past the time limit it kills the child (the C
   tokenizer included) and starts a fresh one for the next page. The child's address
   space is capped (``RLIMIT_AS``), so one page cannot take the executor's memory; it
   dies with its parent (``PR_SET_PDEATHSIG`` on Linux) and is reaped on
   :meth:`PageWorker.close`. Cost: one round trip per page (about 50 µs of CPU on the
   2-core development VM, where waking a process is slow); ``benchmarks/page_guard.py``.

A rejected page gets status ``parse_error`` and one of these errors (prefix first):
``nesting too deep: …``, ``table too large: …``, ``time guard: …``, ``memory guard: …``,
``worker died: …`` (the child died twice on the page, e.g. killed by the kernel).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import time
import traceback

import psutil

from pipeline.wiki.clean import CleanOptions, CleanResult, CleanTimeout, ParserError, clean_wikitext

__all__ = ["MAX_NESTING", "MAX_TABLE_ROWS", "PageWorker", "clean_or_error", "prescan"]

MAX_NESTING = 256
"""Most ``{{`` (or ``[[``) open at once, unclosed ones included. The deepest page of the
shared samples (148 files, 5,487 pages) has 16 levels of ``{{`` and 3 of ``[[``, and
mwparserfromhell treats markup nested deeper than 100 as text anyway; 256 unclosed
``{{a|`` cost the tokenizer 0.02 s, 3,000 cost 4 s and 10,000 more than 20 s."""
MAX_TABLE_ROWS = 20_000
"""Most table rows (``|-`` at the start of a line) in a page. The samples' largest page has 1,259;
the tokenizer needs about 5 kB and 30 µs per row (100,000 rows: 500 MB, 3 s)."""

_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct("<Q")  # message length


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


def clean_or_error(wikitext: str, options: CleanOptions) -> tuple[CleanResult | None, str | None]:
    """:func:`~pipeline.wiki.clean.clean_wikitext`, with a page's own failures as a value.

    Returns:
        ``(result, None)``, or ``(None, "ParserError: …")`` for mwparserfromhell's
        ``ParserError``, the cleaner's ``CleanTimeout`` or a ``RecursionError``. Anything
        else is a bug and propagates.
    """
    try:
        return clean_wikitext(wikitext, options), None
    except (ParserError, CleanTimeout, RecursionError) as e:
        return None, f"{type(e).__name__}: {e}"


class PageWorkerError(RuntimeError):
    """Cleaning raised an unexpected exception (a bug) in the worker; holds its traceback."""


class PageWorker:
    """A child process that cleans pages one at a time under hard CPU and memory limits.

    Started on the first :meth:`clean` (a ``fork`` of the calling process, a few ms) and
    kept for the following pages; a page past a limit costs the child, and the next page
    gets a fresh one. Use as a context manager or call :meth:`close`, from the thread that
    created it (a Linux child dies when the thread that forked it ends).

    Args:
        timeout_s: CPU seconds one page may take in the child; the parent checks every
            ``poll_s`` (default ``min(0.5, timeout_s / 4)``) once a page has taken that
            long, so a page ends within ``timeout_s + poll_s`` of CPU.
        memory_bytes: address space the child may add to what it had when forked
            (``RLIMIT_AS``; Linux only, other systems have no per-page memory bound).
    """

    def __init__(self, timeout_s: float, memory_bytes: int, poll_s: float | None = None):
        if timeout_s <= 0 or memory_bytes <= 0:
            raise ValueError(f"timeout_s and memory_bytes must be > 0, got {timeout_s}, "
                             f"{memory_bytes}")  # fmt: skip
        self.timeout_s, self.memory_bytes = timeout_s, memory_bytes
        self.poll_s = poll_s if poll_s is not None else min(0.5, timeout_s / 4)
        self.pid: int | None = None
        self.starts = 0  # children forked so far
        self._chan: _Channel | None = None
        self._proc: psutil.Process | None = None
        self._options: CleanOptions | None = None  # the options the child holds
        self._cpu = 0.0  # the child's CPU seconds when it finished its last page

    @staticmethod
    def available() -> bool:
        """Whether this platform can fork (not Windows)."""
        return hasattr(os, "fork")

    def __enter__(self) -> PageWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def clean(self, wikitext: str, options: CleanOptions) -> tuple[CleanResult | None, str | None]:
        """Clean one page in the child; the same result as :func:`clean_or_error`, or
        ``(None, reason)`` when a guard stopped it (``time guard: …``, ``memory guard:
        …``, ``worker died: …``).

        Raises:
            PageWorkerError: cleaning raised something other than a page's own failure.
        """
        died = ""
        for _ in range(2):  # a child killed from outside (OOM killer) gets one more try
            if self.pid is not None and options is not self._options:
                self._reap(wait_s=1.0)  # the child holds the options it was forked with
            if self.pid is None:
                self._start(options)
            try:
                self._chan.send(wikitext.encode("utf-8", "surrogatepass"))
                reply = self._wait()
            except (EOFError, OSError):  # the child is gone: reap it, say how it ended
                died = self._reap(wait_s=1.0)
                continue
            if reply is None:
                return None, f"time guard: over {self.timeout_s:g}s of CPU"
            kind, *rest = reply
            if kind == "ok":
                text, categories, error, self._cpu = rest
                return (None if error else CleanResult(text, categories)), error
            self._reap(wait_s=1.0)  # the child exits after a failure: memory or bug
            if kind == "memory":
                return None, f"memory guard: over {self.memory_bytes / 2**20:g} MiB of memory"
            raise PageWorkerError(f"cleaning failed in the page worker:\n{rest[0]}")
        return None, f"worker died: {died}"

    def _wait(self) -> tuple | None:
        """The child's reply, or None once it spent more than ``timeout_s`` of CPU on
        the page (it is then killed and reaped). Raises EOFError if it died."""
        while (message := self._chan.recv()) is None:  # no reply within poll_s
            try:
                times = self._proc.cpu_times()
            except psutil.Error:
                raise EOFError from None
            if times.user + times.system - self._cpu > self.timeout_s:
                self._kill()
                return None
        # Trusted bytes: pickled by the child this object forked, never by the input.
        return pickle.loads(message)

    def _start(self, options: CleanOptions) -> None:
        parent, child = socket.socketpair()
        ppid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child: never return into the caller's code
            code = 1
            try:
                parent.close()
                _child_setup(ppid, child.fileno(), self.memory_bytes)
                _serve(_Channel(child), options)
                code = 0
            finally:
                os._exit(code)
        child.close()
        self.pid, self._chan, self.starts = pid, _Channel(parent, self.poll_s), self.starts + 1
        self._proc = psutil.Process(pid)
        self._options, self._cpu = options, 0.0

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self, wait_s: float = 0.0) -> str:
        """Forget the child after waiting for its exit (up to ``wait_s``, then SIGKILL);
        return how it ended."""
        pid, self.pid = self.pid, None
        self._chan.sock.close()
        self._proc = None
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
        second) and reap it. Safe to call twice."""
        if self.pid is not None:
            self._reap(wait_s=1.0)


def _child_setup(ppid: int, keep_fd: int, memory_bytes: int) -> None:
    """In the forked child: die with the parent, keep only stdio and its socket, ignore
    ^C (the parent handles it), cap the address space."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != ppid:  # the parent died before prctl took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
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
    small message each way (a page's round trip costs four, the child's clock one more).

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


def _serve(chan: _Channel, options: CleanOptions) -> None:
    """The child's loop: a page's wikitext (UTF-8) in, one pickled reply out: ``("ok",
    text, categories, error, cpu_s)``, or ``("memory",)`` or ``("bug", traceback)`` after
    which the child exits. Returns when the parent closes its socket."""
    while True:
        try:
            wikitext = str(chan.recv(), "utf-8", "surrogatepass")
        except EOFError:
            return
        try:
            result, error = clean_or_error(wikitext, options)
        except Exception as e:  # MemoryError: the C tokenizer wraps it in a SystemError
            reply = ("memory",) if _out_of_memory(e) else ("bug", traceback.format_exc())
            chan.send(pickle.dumps(reply))
            return
        text, categories = (result.text, result.categories) if result else (None, None)
        del result, wikitext
        reply = ("ok", text, categories, error, time.process_time())
        chan.send(pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))
