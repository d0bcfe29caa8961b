"""Shared fixtures: the shared real-data folder and one session-scoped SparkSession."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Real Wikimedia samples live beside the checkout, never inside it (see ../shared/).
WIKI_DATA = ROOT / ".." / "shared" / "data" / "wiki"

_TIERS = ("spark", "dist", "e2e", "gpu", "cluster", "airflow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (the folder under tests/) so `-m` can select tiers."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def wiki_data() -> Path:
    """Folder of the real dump samples (``../shared/data/wiki``); fails if it is missing."""
    if not (WIKI_DATA / "SOURCES.md").is_file():
        pytest.fail(f"shared samples not found at {WIKI_DATA.resolve()}; clone beside ../shared")
    return WIKI_DATA


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession of the test run: local[2], loopback, UI off.

    Two task slots so that a 2-rank ``horovod.spark.run`` fits.
    """
    from pipeline.spark.session import build_spark_session
    from pipeline.stage_config import SparkConfig

    session = build_spark_session(
        SparkConfig(master="local[2]", ui_enabled=False, shuffle_partitions=2, log_level="ERROR")
    )
    yield session
    session.stop()
