"""The page worker cleans a batch while the task reads the next (issue 15).

:meth:`PageWorker.submit` returns before the batch is cleaned and :meth:`collect` gives
what :meth:`clean_batch` gives; :func:`pipeline.wiki.pages.iter_rows` keeps one batch in
the worker while it reads the next, and its rows stay in input order.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.wiki import guard, pages, sources
from pipeline.wiki.clean import CleanOptions

pytestmark = pytest.mark.skipif(not guard.PageWorker.available(), reason="needs fork")


def test_submit_then_collect_is_clean_batch() -> None:
    opts = CleanOptions()
    texts = [f"Page ''{i}'' of [[Berlin|the city]] {{{{convert|{i}|km}}}}" for i in range(90)]
    with guard.PageWorker(10.0, 1 << 30) as worker:
        worker.submit(texts[:40], opts)
        with pytest.raises(guard.PageWorkerError, match="not collected"):
            worker.submit(texts[40:], opts)
        first = worker.collect()
        worker.submit(texts[40:], opts)
        second = worker.collect()
        with pytest.raises(guard.PageWorkerError, match="no batch"):
            worker.collect()
    assert first + second == [guard.clean_or_error(t, opts) for t in texts]
    assert first[0][0] is not None and "the city" in first[0][0].text


def test_time_guard_applies_to_a_submitted_batch() -> None:
    opts = CleanOptions()
    with guard.PageWorker(0.2, 1 << 30) as worker:
        worker.submit(["a", "{{a|" * 2_000 + "b", "c"], opts)
        results = worker.collect()
    assert results[0][0] is not None and results[0][0].text == "a"
    assert results[1] == (None, "time guard: over 0.2s of CPU")
    assert results[2][0] is not None and results[2][0].text == "c"


def test_close_with_a_batch_in_flight_ends_the_child() -> None:
    opts = CleanOptions()
    worker = guard.PageWorker(30.0, 1 << 30)
    worker.submit(["{{a|" * 2_000 + "b"] * 3, opts)  # seconds of cleaning
    pid = worker.pid
    worker.close()  # killed, not waited for
    assert worker.pid is None and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: no such process
    worker.submit(["Fresh [[page]]."], opts)  # a new child; nothing left of the old batch
    assert worker.collect() == [guard.clean_or_error("Fresh [[page]].", opts)]
    worker.close()


@pytest.mark.parametrize("batch_chars", [1, 1 << 30])
def test_rows_keep_input_order_with_batches_in_flight(
    wiki_data: Path, monkeypatch: pytest.MonkeyPatch, batch_chars: int
) -> None:
    dump = wiki_data / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    files = sources.expand_inputs([str(dump)])
    task = sources.plan_tasks(files, 1 << 40)[0]
    inline = list(pages.iter_rows(task, pages.ParseOptions(page_worker=False), _stats(task)))
    monkeypatch.setattr(pages, "BATCH_CHARS", batch_chars)  # a page a batch, or one batch
    rows = list(pages.iter_rows(task, pages.ParseOptions(), _stats(task)))
    assert [r["page_id"] for r in rows] == [r["page_id"] for r in inline]
    assert rows == inline
    assert sum(r["status"] == "ok" for r in rows) > 50


def _stats(task: dict) -> pages.TaskStats:
    return pages.TaskStats(task=task["task"], source=task["source"])
