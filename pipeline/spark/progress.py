"""A tqdm progress bar for a Spark action, polled from the status tracker."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def run_with_progress(sc: Any, action: Callable[[], T], total: int, desc: str) -> T:
    """Run ``action()`` (a Spark action) in a thread while a bar shows finished tasks.

    ``total`` is the number of tasks expected (the bar counts completed tasks of every
    stage the action runs, capped at ``total``). Exceptions of the action are re-raised in
    the caller's thread.
    """
    result: dict[str, Any] = {}
    group = f"pipeline-{desc}-{time.monotonic_ns()}"

    def work() -> None:
        sc.setJobGroup(group, desc)
        try:
            result["value"] = action()
        except Exception as e:  # re-raised in the caller's thread
            result["error"] = e

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    with tqdm(total=total, desc=desc, unit="task", file=sys.stderr, mininterval=1) as bar:
        while thread.is_alive():
            thread.join(0.5)
            done = 0
            tracker = sc.statusTracker()
            for job in tracker.getJobIdsForGroup(group):
                info = tracker.getJobInfo(job)
                for stage in info.stageIds if info else []:
                    s = tracker.getStageInfo(stage)
                    done += s.numCompletedTasks if s else 0
            bar.update(max(0, min(done, total) - bar.n))
        bar.update(total - bar.n if "error" not in result else 0)
    if "error" in result:
        raise result["error"]
    return result["value"]
