"""Every test tier is collected by a plain `pytest` (as `make test` runs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_plain_pytest_collects_every_tier() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    tiers = {line.split("/")[1] for line in proc.stdout.splitlines() if line.startswith("tests/")}
    assert tiers >= {"unit", "spark", "dist", "e2e", "gpu", "cluster"}
