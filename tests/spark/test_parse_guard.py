"""The parse stage on local Spark with pathological pages: each gets a status in bounded
time, the normal pages are the same rows as without them, no cleaning process is left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest

from pipeline.spark.parse_stage import run_parse
from pipeline.stage_config import load_config
from tests.unit.test_page_guard import BAD_PAGES, SAMPLE, TIMEOUT_S, crafted_dump


def parse(dump: Path, out: Path) -> list[dict]:
    cfg = load_config(
        overrides=[
            f"parse.input={json.dumps([str(dump)])}",
            f"parse.out={out}",
            f"parse.parse_timeout_s={TIMEOUT_S}",
        ]
    )
    stats = run_parse(cfg, progress=False)
    rows = pq.read_table([str(out / f) for f in stats["files"]]).to_pylist()
    assert stats["totals"]["rows"] == len(rows)
    return rows


def cleaning_children() -> list[psutil.Process]:
    """Processes, zombies included, forked by a PySpark worker (itself forked by the
    PySpark daemon): page workers not closed, or not reaped."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            parent = p.parent()
            chain = [parent, parent.parent()]
            if all("pyspark.daemon" in " ".join(q.cmdline()) for q in chain):
                found.append(p)
        except (psutil.Error, AttributeError):
            continue
    return found


@pytest.mark.timeout(400)
def test_pathological_pages_get_a_status_and_spare_the_rest(spark, wiki_data: Path, tmp_path):
    clean = parse(wiki_data / SAMPLE, tmp_path / "clean")
    started = time.monotonic()
    rows = parse(crafted_dump(tmp_path / "in"), tmp_path / "crafted")
    seconds = time.monotonic() - started

    bad = {r["title"]: (r["status"], r["error"]) for r in rows if r["title"] in BAD_PAGES}
    assert bad == {title: ("parse_error", reason) for title, (_, reason) in BAD_PAGES.items()}
    key = sorted(clean[0])
    normal = [r for r in rows if r["title"] not in BAD_PAGES]
    assert [[r[k] for k in key] for r in normal] == [[r[k] for k in key] for r in clean]
    assert sum(r["status"] == "ok" for r in normal) == 6
    assert seconds < 180  # hours without the guards; generous for a loaded 2-core machine
    assert cleaning_children() == []
