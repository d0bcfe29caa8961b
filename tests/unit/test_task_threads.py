"""The tokenizer's thread pool is sized to the Spark task's cores (featurise)."""

from __future__ import annotations

import os
import subprocess
import sys


def _env_after(cores: int, **env: str) -> tuple[str, str]:
    code = (
        "import os\nfrom pipeline.shards.tokenize import set_task_threads\n"
        f"set_task_threads({cores})\n"
        "print(os.environ['RAYON_NUM_THREADS'], os.environ['TOKENIZERS_PARALLELISM'])"
    )
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")
    }
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0], out[1]


def test_threads_follow_task_cores_and_keep_user_settings() -> None:
    assert _env_after(1) == ("1", "false")
    assert _env_after(4) == ("4", "true")
    assert _env_after(1, RAYON_NUM_THREADS="3") == ("3", "false")  # the user's value stays
