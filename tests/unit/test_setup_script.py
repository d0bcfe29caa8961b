"""scripts/setup.sh stops with one sentence naming what to install when a tool is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["bash", "sed", "head", "cat", "cut", "dirname", "sha256sum"]


def fake(bin_dir: Path, name: str, stderr: str = "") -> None:
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\n", encoding="utf-8")
    script.chmod(0o755)


def run_setup(tmp_path: Path, *, java: str | None, cxx: bool, cmake: bool):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)
    os.symlink(os.path.realpath(sys.executable), bin_dir / "python3")  # the real interpreter
    if java is not None:
        fake(bin_dir, "java", f'openjdk version "{java}" 2025-04-15')
    if cxx:
        fake(bin_dir, "g++")
    if cmake:
        fake(bin_dir, "cmake")
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "VENV": str(tmp_path / "venv")}
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not (tmp_path / "venv").exists(), "nothing may be installed when a tool is missing"
    return proc


@pytest.mark.parametrize(
    ("java", "cxx", "cmake", "expected"),
    [
        (None, True, True, "Java is missing; install a Java 17+ runtime"),
        ("11.0.22", True, True, "Java 11 is too old for Spark 4; install Java 17 or newer"),
        ("1.8.0_392", True, True, "too old for Spark 4; install Java 17 or newer"),
        ("17.0.15", False, True, "a C++ compiler is missing"),
        ("21.0.2", True, False, "cmake is missing"),
    ],
)
def test_missing_prerequisite_is_named(tmp_path, java, cxx, cmake, expected) -> None:
    proc = run_setup(tmp_path, java=java, cxx=cxx, cmake=cmake)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "install" in lines[0]
