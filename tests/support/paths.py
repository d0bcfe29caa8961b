"""Where things are: the repository, the shared samples, the venv's scripts."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository root."""
WIKI_DATA = ROOT / ".." / "shared" / "data" / "wiki"
"""Real Wikimedia samples, beside the checkout, never inside it (see ../shared/)."""
BIN = Path(sys.executable).parent
"""The folder of the running interpreter: the venv's ``bin/``, whatever its name."""
PIPELINE = BIN / "pipeline"
"""The installed ``pipeline`` console script of the venv the tests run in."""
