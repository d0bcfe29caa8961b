"""The real cause of a failed Spark job, found in the text Spark wraps around it.

When a per-partition function raises on an executor, the driver does not get that
exception: it gets a ``py4j.protocol.Py4JJavaError`` (RDD jobs) or a
``pyspark.errors.PythonException`` (DataFrame jobs) whose text holds the Java stack trace
and, inside it, the Python worker's traceback as text. :func:`cause_of` reads the last
exception line of that traceback (``OSError: [Errno 28] No space left on device: '/x'``,
``pipeline.wiki.xmlpages.DumpError: ...``) or a known Java cause (a full disk, a denied
path, an exhausted heap) and rebuilds an error the CLI can print as one line.

No pyspark import here: the CLI calls this on any exception, also without Spark.
"""

from __future__ import annotations

import errno
import re

from pipeline.errors import PipelineError, UsageError

_TRACEBACK = "Traceback (most recent call last):"
# "pkg.mod.SomeError: message" / "OSError: [Errno 28] ..." / "KeyError" alone.
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?:: (?P<msg>.*))?$")
_ERRNO = re.compile(r"\[Errno (?P<code>\d+)\] (?P<text>.*?)(?:: '(?P<file>[^']*)')?$")
_ARROW_ERRNO = re.compile(r"\[errno (?P<code>\d+)\] (?P<text>[^\n]*)")

# The worker's exception types we rebuild, by class name (last dotted part).
_STAGE_ERRORS = {
    "DumpError",
    "PagesError",
    "ShardError",
    "TrainError",
    "CheckpointError",
    "NonFiniteLoss",
    "ExportError",
    "DownloadError",
    "ChecksumError",
    "CleanTimeout",
    "PipelineError",
    "OutputError",
}
_USAGE_ERRORS = {"ConfigError", "UsageError", "OutputError"}
_OS_ERRORS = {
    "OSError": None,
    "IOError": None,
    "ArrowIOError": None,
    "PermissionError": errno.EACCES,
    "FileNotFoundError": errno.ENOENT,
    "FileExistsError": errno.EEXIST,
    "IsADirectoryError": errno.EISDIR,
    "NotADirectoryError": errno.ENOTDIR,
}
# Java exceptions of the executors' or driver's own I/O, by the text that names them.
_JAVA = [
    (re.compile(r"No space left on device"), errno.ENOSPC),
    (re.compile(r"Disk quota exceeded"), errno.EDQUOT),
    (re.compile(r"Read-only file system"), errno.EROFS),
    (re.compile(r"java\.nio\.file\.AccessDeniedException: (?P<file>\S+)"), errno.EACCES),
    (
        re.compile(r"java\.io\.FileNotFoundException: (?P<file>\S+) \(Permission denied\)"),
        errno.EACCES,
    ),
    (re.compile(r"Permission denied"), errno.EACCES),
]


def is_spark_error(exc: BaseException) -> bool:
    """True for the exception types PySpark raises on the driver for a failed job
    (``py4j.protocol.Py4JJavaError``, ``pyspark.errors.*`` / ``pyspark.sql.utils.*``)."""
    return any(
        (cls.__module__ or "").split(".")[0] in ("py4j", "pyspark") for cls in type(exc).__mro__
    )


def spark_text(exc: BaseException) -> str:
    """The whole text of a Spark error: its message, the Java stack trace and causes."""
    parts = [str(exc)]
    desc = getattr(exc, "desc", None)  # pyspark's CapturedException keeps the Java text here
    if isinstance(desc, str) and desc not in parts[0]:
        parts.append(desc)
    trace = getattr(exc, "stackTrace", None)
    if isinstance(trace, str) and trace not in parts[0]:
        parts.append(trace)
    return "\n".join(parts)


def worker_exception(text: str) -> tuple[str, str] | None:
    """``(type, message)`` of the last Python exception in a traceback embedded in ``text``.

    The type is as the traceback printed it (``OSError``,
    ``pipeline.wiki.xmlpages.DumpError``); the message is the rest of that line. None when
    ``text`` holds no Python traceback.
    """
    lines = text.splitlines()
    found: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if _TRACEBACK not in line:
            i += 1
            continue
        # Spark may write "...PythonException: Traceback (most recent call last):" on one
        # line; the frames below it are then indented by two spaces, as usual.
        indent = len(line) - len(line.lstrip()) if line.lstrip().startswith(_TRACEBACK) else 0
        i += 1
        # Frames are indented deeper than the "Traceback" line; the exception line is not.
        while i < len(lines) and (
            not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
        ):
            i += 1
        if i < len(lines):
            m = _EXC_LINE.match(lines[i].strip())
            if m:
                found = (m.group("type"), (m.group("msg") or "").strip())
        i += 1
    return found


def _os_error(code: int, text: str, filename: str | None) -> OSError:
    err = OSError(code, text or errno.errorcode.get(code, "I/O error"))
    err.filename = filename or None
    return err


def _from_message(kind: str, message: str) -> PipelineError | OSError | None:
    """Rebuild the error a worker raised from its type name and message."""
    name = kind.rsplit(".", 1)[-1]
    if name in _OS_ERRORS:
        m = _ERRNO.search(message)
        if m:
            code, text = int(m.group("code")), m.group("text")
            inner = _ARROW_ERRNO.search(text)  # pyarrow: "... Detail: [errno 28] No space ..."
            if inner:
                code, text = int(inner.group("code")), inner.group("text")
            return _os_error(code, text, m.group("file"))
        inner = _ARROW_ERRNO.search(message)
        if inner:
            return _os_error(int(inner.group("code")), inner.group("text"), None)
        fixed = _OS_ERRORS[name]
        if fixed is not None:
            return _os_error(fixed, message, None)
        return PipelineError(f"{name}: {message}")
    if name in _USAGE_ERRORS:
        return UsageError(message)
    if name in _STAGE_ERRORS:
        return PipelineError(message)
    if name == "MemoryError":
        return PipelineError(
            "a Spark task ran out of memory; give it more (spark.conf: "
            "spark.executor.memory) or lower the work per task (parse.split_bytes)"
        )
    return None


def _java_cause(text: str) -> PipelineError | OSError | None:
    """A known Java-side cause (full disk, denied path, exhausted heap) in ``text``."""
    for pattern, code in _JAVA:
        m = pattern.search(text)
        if m:
            filename = m.groupdict().get("file")
            if filename and filename.startswith("file:"):
                filename = filename[len("file:") :]
            return _os_error(code, "", filename)
    if "java.lang.OutOfMemoryError" in text:
        return PipelineError(
            "Spark ran out of memory (java.lang.OutOfMemoryError); raise spark.driver_memory "
            "(and spark.conf spark.executor.memory on a cluster) or lower the work per task"
        )
    return None


def cause_of(exc: BaseException) -> PipelineError | OSError | None:
    """The real cause of a failed Spark job, as an error the CLI prints in one line.

    Looks in the Python worker's traceback that Spark embeds in ``exc`` (the last
    exception raised there) and then for known Java causes. Returns an ``OSError`` (with
    ``errno`` and, where the text names it, ``filename``) for I/O failures such as
    ``[Errno 28] No space left on device``; a :class:`~pipeline.errors.PipelineError`
    carrying the worker's message for the pipeline's own errors (``DumpError``,
    ``ShardError``, ... ; a :class:`~pipeline.errors.UsageError` for ``ConfigError``);
    None when no known cause is found (a bug: the caller reports an internal error).
    """
    text = spark_text(exc)
    found = worker_exception(text)
    if found is not None:
        rebuilt = _from_message(*found)
        if rebuilt is not None:
            return rebuilt
        # an unknown Python exception in a worker: a bug, unless Java says otherwise
    return _java_cause(text)


def summary(exc: BaseException) -> str:
    """One line saying what failed in a Spark job whose cause :func:`cause_of` did not
    recognise: the worker's exception (``ZeroDivisionError: division by zero``) or the
    first line of the Java error."""
    text = spark_text(exc)
    found = worker_exception(text)
    if found is not None:
        kind, message = found
        return f"{kind}: {message}" if message else kind
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("An error occurred while calling"):
            return line[:300]
    return type(exc).__name__
