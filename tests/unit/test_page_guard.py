"""Per-page guards: pathological markup never hangs a task, normal pages are untouched.

The crafted dumps are a real sample with extra ``<page>`` elements of each shape seen
hanging a parse task: 200,000 nested ``{{``, 100,000 unclosed ``[[a|``, a 100,000-row
table (all rejected by the pre-scan), and 30,000 unclosed ``<span>`` (quadratic in the
C tokenizer, about a minute of CPU, not pre-scanned: the worker's time guard stops it).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from xml.sax.saxutils import escape

import psutil
import pyarrow.parquet as pq
import pytest

from pipeline.wiki import guard, pages, sources
from pipeline.wiki.clean import CleanOptions
from pipeline.wiki.xmlpages import DumpError, Page, PageReader

WIKI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wiki"
SAMPLE = "enwiki-20250201-tiny_dump.xml.bz2"  # 70 pages, 6 of them articles
TIMEOUT_S = 2.0  # parse_timeout_s of the crafted-dump runs

# title: (wikitext, the start of the row's error)
BAD_PAGES = {
    "Guard nested templates": (
        "{{" * 200_000 + "x" + "}}" * 200_000,
        "nesting too deep: 200000 levels of {{ (limit 256)",
    ),
    "Guard unclosed links": ("[[a|" * 100_000, "nesting too deep: 100000 levels of [[ (limit 256)"),
    "Guard huge table": (
        "{|\n" + "|-\n| a || b\n" * 100_000 + "|}\n",
        "table too large: 100000 rows (limit 20000)",
    ),
    "Guard unclosed tags": ("<span>" * 30_000, f"time guard: over {TIMEOUT_S:g}s of CPU"),
}


def _page_xml(title: str, page_id: int, wikitext: str) -> str:
    return textwrap.dedent(f"""\
      <page>
        <title>{escape(title)}</title>
        <ns>0</ns>
        <id>{page_id}</id>
        <revision>
          <id>{page_id + 10**9}</id>
          <timestamp>2025-02-01T00:00:00Z</timestamp>
          <model>wikitext</model>
          <format>text/x-wiki</format>
          <text xml:space="preserve">{escape(wikitext)}</text>
        </revision>
      </page>
    """)


def crafted_dump(folder: Path, bad: dict[str, tuple[str, str]] = BAD_PAGES) -> Path:
    """Write ``folder/<SAMPLE>``: the real sample with the ``bad`` pages spread between
    its pages (the same file name, so that rows' ``source`` match the sample's)."""
    xml = bz2.decompress((WIKI / SAMPLE).read_bytes()).decode("utf-8")
    parts = xml.split("</page>")
    step = len(parts) // (len(bad) + 1)
    for k, (title, (wikitext, _)) in enumerate(bad.items()):
        at = (k + 1) * step  # after page `at`, before the next
        parts[at] = "\n" + _page_xml(title, 90_000_000 + k, wikitext) + parts[at].lstrip("\n")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / SAMPLE
    out.write_bytes(bz2.compress("</page>".join(parts).encode("utf-8"), 1))
    return out


def parse_file(path: Path, out: Path, opts: pages.ParseOptions) -> list[dict]:
    """Every row of ``path`` through :func:`pipeline.wiki.pages.run_task`."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in sources.plan_tasks(sources.expand_inputs([str(path)]), 1 << 30):
        stats = pages.run_task(task, opts, str(out), "0-0")
        assert stats.rows == stats.pages
        rows += pq.read_table(stats.file).to_pylist()
    return rows


def sample_pages() -> Iterator[tuple[str, Page]]:
    """Every page of every readable shared sample (not 7z, indexes or the truncated one)."""
    for path in sorted(WIKI.rglob("*")):
        name = path.name
        if not path.is_file() or name.endswith((".md", ".7z")) or sources.is_index(name):
            continue
        opener = {".bz2": bz2.open, ".gz": gzip.open}.get(path.suffix, open)
        reader = PageReader(str(path))
        try:
            with opener(path, "rb") as f:
                while data := f.read(1 << 20):
                    yield from ((name, p) for p in reader.feed(data))
                yield from ((name, p) for p in reader.close())
        except DumpError:
            assert "TRUNCATED" in name


@pytest.fixture
def existing() -> set[int]:
    """The pids of this process's descendants as the test begins (earlier tests' leftovers,
    e.g. an unreaped ``bash`` of a cluster test, are not this test's doing)."""
    return {p.pid for p in psutil.Process().children(recursive=True)}


def zombies(existing: set[int]) -> list[psutil.Process]:
    """Zombie descendants of this process, but those in ``existing``."""
    found = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.pid not in existing and p.status() == psutil.STATUS_ZOMBIE:
                found.append(p)
    return found


@pytest.mark.parametrize(
    ("wikitext", "reason"),
    [(text, reason) for text, reason in BAD_PAGES.values() if "guard" not in reason]
    + [
        ("{{a|" * 300, "nesting too deep: 300 levels of {{ (limit 256)"),
        ("[[" * 257 + "]]" * 257, "nesting too deep: 257 levels of [[ (limit 256)"),
        ("{|\n" + "|-\n|a\n" * 20_001 + "|}", "table too large: 20001 rows (limit 20000)"),
    ],
)
def test_prescan_rejects_pathological_shapes(wikitext: str, reason: str) -> None:
    assert guard.prescan(wikitext) == reason


def test_prescan_passes_at_the_limits_and_stray_closers() -> None:
    assert guard.prescan("{{" * 256 + "}}" * 256) is None
    assert guard.prescan("{{a}} " * 10_000) is None  # many templates, none nested
    assert guard.prescan("]]" * 1000 + "[[a]]" * 300) is None  # stray closers never go below 0
    assert guard.prescan("{|\n" + "|-\n|a\n" * 20_000 + "|}") is None


def test_prescan_passes_every_page_of_the_shared_samples() -> None:
    rejected, count = [], 0
    for name, page in sample_pages():
        count += 1
        if page.text and (reason := guard.prescan(page.text)):
            rejected.append((name, page.title, reason))
    assert count > 5000  # every sample was read
    assert rejected == []


@pytest.mark.timeout(300)
def test_crafted_dump_bad_pages_rejected_normal_pages_identical(tmp_path: Path) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    opts = pages.ParseOptions(parse_timeout_s=TIMEOUT_S)
    clean = parse_file(WIKI / SAMPLE, tmp_path / "clean", pages.ParseOptions(page_worker=False))
    started = time.monotonic()
    rows = parse_file(crafted_dump(tmp_path / "in"), tmp_path / "crafted", opts)
    seconds = time.monotonic() - started

    bad = {r["title"]: r for r in rows if r["title"] in BAD_PAGES}
    assert set(bad) == set(BAD_PAGES)
    for title, (_, reason) in BAD_PAGES.items():
        assert (bad[title]["status"], bad[title]["error"]) == ("parse_error", reason), title
        assert bad[title]["text"] is None
    # Normal pages: the same rows (text, categories, every column) as without the bad
    # pages, cleaned in-process; three of the articles come after a killed worker.
    assert [r for r in rows if r["title"] not in BAD_PAGES] == clean
    assert sum(r["status"] == "ok" for r in clean) == 6
    # Bounded: the pre-scan is instant and the kernel stops the <span> page at 2.25 s of
    # CPU; without them this input runs for hours. Generous for a shared, loaded machine.
    assert seconds < 120
    # No worker outlives the parse (earlier tests' leftovers in ``before`` may exit meanwhile).
    assert {p.pid for p in psutil.Process().children(recursive=True)} - before == set()
    assert zombies(before) == []


@pytest.mark.parametrize("batch", [None, 2], ids=["default-batches", "batches-of-2"])
def test_worker_matches_in_process_on_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int | None
) -> None:
    if batch:  # many batches, and rows held back up to PENDING_ROWS
        monkeypatch.setattr(guard, "BATCH_PAGES", batch)
        monkeypatch.setattr(pages, "PENDING_ROWS", 3)
    path = WIKI / "simplewiki-camchenry.xml.bz2"
    inproc = parse_file(path, tmp_path / "a", pages.ParseOptions(page_worker=False))
    worker = parse_file(path, tmp_path / "b", pages.ParseOptions())
    assert worker == inproc
    assert sum(r["status"] == "ok" for r in worker) == 6


def test_time_guard_kills_the_tokenizer_and_restarts(existing: set[int]) -> None:
    opts = CleanOptions()
    with guard.PageWorker(timeout_s=1.0, memory_bytes=1 << 30) as worker:
        assert worker.clean("Hello [[world]].", opts)[0].text == "Hello world."
        cpu = time.process_time()
        result, error = worker.clean("<span>" * 30_000, opts)
        assert (result, error) == (None, "time guard: over 1s of CPU")
        assert time.process_time() - cpu < 1.0  # the parent only waited
        assert worker.pid is None and worker.starts == 1
        assert worker.clean("Hello [[world]].", opts)[0].text == "Hello world."
        assert worker.starts == 2
    assert worker.pid is None
    assert zombies(existing) == []


def test_pages_go_to_the_worker_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []  # the parent's messages (the child's copy of this list is its own)
    send = guard._Channel.send
    monkeypatch.setattr(guard._Channel, "send", lambda c, b: (sent.append(len(b)), send(c, b))[1])
    opts = CleanOptions()
    texts = [f"Page ''{i}'' [[Category:C{i}]]" for i in range(guard.BATCH_PAGES + 36)]
    with guard.PageWorker(timeout_s=30.0, memory_bytes=1 << 30) as worker:
        assert worker.clean_batch(texts, opts) == [guard.clean_or_error(t, opts) for t in texts]
        assert worker.clean_batch([], opts) == []
    assert len(sent) == 2  # one round trip per batch, not per page
    assert guard.batch_spans([guard.BATCH_CHARS // 2] * 3 + [1]) == [(0, 2), (2, 4)]
    assert guard.batch_spans([guard.BATCH_CHARS + 1, 1]) == [(0, 1), (1, 2)]


@pytest.mark.timeout(60)
def test_kernel_time_guard_stops_a_page_and_spares_its_batch(existing: set[int]) -> None:
    opts = CleanOptions()
    texts = [f"Page [[{i}]]." for i in range(8)]
    texts[3] = "<span>" * 30_000  # about a minute of CPU in the C tokenizer
    # poll_s=600: the parent never wakes to check; the CPU timer in the child must fire.
    with guard.PageWorker(timeout_s=1.0, memory_bytes=1 << 30, poll_s=600.0) as worker:
        before = os.times()
        results = worker.clean_batch(texts, opts)
        after = os.times()
        assert results[3] == (None, "time guard: over 1s of CPU")
        assert [r.text for r, _ in results[:3] + results[4:]] == [
            f"Page {i}." for i in range(8) if i != 3
        ]
        assert worker.starts == 2  # the pages after it went to a fresh child
        assert after.user + after.system - before.user - before.system < 0.5  # parent waited
        # The killed child (reaped) spent the limit plus its few pages: a tick's precision.
        child = after.children_user + after.children_system
        child -= before.children_user + before.children_system
        assert 1.0 <= child < 1.0 + guard.GRACE_S + 0.25
    assert zombies(existing) == []


def test_page_that_kills_its_worker_twice_is_reported(
    monkeypatch: pytest.MonkeyPatch, existing: set[int]
) -> None:
    clean_or_error = guard.clean_or_error

    def deadly(wikitext: str, options: CleanOptions, title: str | None = None) -> tuple:
        if wikitext == "deadly":  # as the OOM killer would, on this page only
            os.kill(os.getpid(), signal.SIGKILL)
        return clean_or_error(wikitext, options, title)

    monkeypatch.setattr(guard, "clean_or_error", deadly)  # children inherit it
    with guard.PageWorker(timeout_s=30.0, memory_bytes=1 << 30) as worker:
        results = worker.clean_batch(["a", "deadly", "b"], CleanOptions())
        assert results[1] == (None, "worker died: killed by SIGKILL")
        assert [results[0][0].text, results[2][0].text] == ["a", "b"]
        assert worker.starts == 3  # one retry on the page, then a child for the rest
    assert zombies(existing) == []


_MEMORY_GUARD_CHECK = """
from pipeline.wiki import guard
from pipeline.wiki.clean import CleanOptions

opts = CleanOptions()
page = "[[a]] " * 300_000  # 1.8 MB of links: about 250 MB of tokens
with guard.PageWorker(timeout_s=60.0, memory_bytes=64 << 20) as worker:
    result, error = worker.clean(page, opts)
    assert (result, error) == (None, "memory guard: over 64 MiB of memory"), error
    assert worker.clean("Hello [[world]].", opts)[0].text == "Hello world."
    hello, big, world = worker.clean_batch(["Hello.", page, "[[World]]"], opts)
    assert big == (None, "memory guard: over 64 MiB of memory"), big[1]
    assert (hello[0].text, world[0].text) == ("Hello.", "World")
assert guard.clean_or_error(page, opts)[1] is None  # in-process, unbounded: it fits
print("ok")
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux only")
def test_memory_guard_bounds_one_page() -> None:
    """Run in a fresh interpreter: the cap is on address-space growth past the fork, and a
    long-lived test process holds freed heap the child could reuse without growing."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_GUARD_CHECK],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_page_errors_and_bugs_from_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    opts = CleanOptions()
    with guard.PageWorker(timeout_s=30.0, memory_bytes=1 << 30) as worker:
        assert worker.clean("x" * 10, opts) == guard.clean_or_error("x" * 10, opts)

        def broken(wikitext: str, options: CleanOptions, title: str | None = None) -> None:
            raise KeyError("a bug")

        monkeypatch.setattr(guard, "clean_wikitext", broken)  # the next child inherits it
        worker.close()
        with pytest.raises(guard.PageWorkerError, match="KeyError: 'a bug'"):
            worker.clean("Hello", opts)


def test_child_killed_from_outside_is_replaced(existing: set[int]) -> None:
    opts = CleanOptions()
    with guard.PageWorker(timeout_s=30.0, memory_bytes=1 << 30) as worker:
        worker.clean("a", opts)
        os.kill(worker.pid, signal.SIGKILL)  # e.g. the kernel's OOM killer, between pages
        assert worker.clean("Hello [[world]].", opts)[0].text == "Hello world."
        assert worker.starts == 2
    assert zombies(existing) == []


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux only")
def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    code = textwrap.dedent("""\
        import sys, time
        from pipeline.wiki import guard
        from pipeline.wiki.clean import CleanOptions
        worker = guard.PageWorker(timeout_s=600.0, memory_bytes=1 << 30)
        worker.clean("a", CleanOptions())
        print(worker.pid, flush=True)
        # Equal options: the same child (different ones would need a fresh child).
        worker.clean("<span>" * 100_000, CleanOptions())  # busy in the C tokenizer
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = psutil.Process(int(parent.stdout.readline()))
    time.sleep(0.5)
    assert _running(child)  # busy on the page: the child printed is the one cleaning
    parent.kill()  # no chance to close the worker
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    assert not _running(child)


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE  # a zombie waits for init to reap it
    except psutil.NoSuchProcess:
        return False
