"""MLflow tracking (``train.mlflow: true``): a 2-rank run on real text, read back through
the MLflow client, matches the run's own ``metrics.jsonl``; a resumed run is a new MLflow
run holding only the new steps; without mlflow installed the launcher refuses (exit 2)
before any rank starts, and a run without it configured never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.train.metrics import TB_TAGS
from tests.support import training as ts


def _client(run: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{run.resolve() / 'mlflow.db'}")


def _mlflow_runs(run: Path) -> list[Any]:
    client = _client(run)
    exp = client.get_experiment_by_name("gpt")
    assert exp is not None
    return client.search_runs([exp.experiment_id], order_by=["attribute.start_time ASC"])


def _history(run: Path, run_id: str, tag: str) -> dict[int, float]:
    points = _client(run).get_metric_history(run_id, tag)
    steps = [m.step for m in points]
    assert len(steps) == len(set(steps)), f"{tag}: a step logged twice"
    return {m.step: m.value for m in points}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-rank run of 8 steps with MLflow on, then the same run folder resumed to 12."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed")
    base = tmp_path_factory.mktemp("mlflow")
    run = base / "run"
    cfg = ts.write_config(base / "c.yaml", data=ts.real_shards(), run=run, mlflow=True)
    proc = ts.pipeline_train(cfg, "--hosts", "localhost:2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (base / "metrics-8.jsonl").write_bytes((run / "metrics.jsonl").read_bytes())
    proc = ts.pipeline_train(cfg, "--hosts", "localhost:2", "train.max_steps=12")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


def test_mlflow_run_matches_the_metrics_log(tracked: Path) -> None:
    first = _mlflow_runs(tracked)[0]
    assert first.info.status == "FINISHED"
    assert first.data.tags["pipeline.run_folder"] == str(tracked.resolve())
    assert "pipeline.resumed_from_step" not in first.data.tags
    params = first.data.params
    assert params["train.lr"] == "0.003" and params["model.n_layer"] == "2"
    assert params["train.mlflow"] == "True" and params["train.backend"] == "horovod"
    rows = [
        json.loads(line) for line in (tracked.parent / "metrics-8.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == list(range(9))
    for key, tag in TB_TAGS.items():
        expected = {r["step"]: r[key] for r in rows if r.get(key) is not None}
        assert expected, key
        got = _history(tracked, first.info.run_id, tag)
        assert got.keys() == expected.keys(), tag
        assert all(got[s] == pytest.approx(v, rel=1e-12) for s, v in expected.items()), tag
    assert sorted(_history(tracked, first.info.run_id, "val/loss")) == [0, 4, 8]
    assert not (tracked / "mlruns").exists()


def test_resumed_run_is_a_new_mlflow_run_with_the_new_steps(tracked: Path) -> None:
    runs = _mlflow_runs(tracked)
    assert len(runs) == 2  # one per launch; ranks other than 0 log nothing
    second = runs[1]
    assert second.info.status == "FINISHED"
    assert second.data.tags["pipeline.resumed_from_step"] == "8"
    assert second.data.params["train.max_steps"] == "12"
    loss = _history(tracked, second.info.run_id, "train/loss")
    assert sorted(loss) == [9, 10, 11, 12]
    expected = ts.losses(tracked)
    assert all(loss[s] == pytest.approx(expected[s], rel=1e-12) for s in loss)
    assert sorted(_history(tracked, second.info.run_id, "val/loss")) == [12]


def test_mlflow_missing_is_a_usage_error_before_any_rank(tmp_path: Path) -> None:
    """``sys.modules['mlflow'] = None`` makes mlflow unimportable, as when not installed."""
    cfg = ts.write_config(
        tmp_path / "c.yaml", data=ts.real_shards(), run=tmp_path / "run", mlflow=True
    )
    code = (
        "import sys; sys.modules['mlflow'] = None\n"
        "from pipeline.cli import main\n"
        f"sys.exit(main(['train', {str(cfg)!r}, '--hosts', 'localhost:2']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "train.mlflow is true but mlflow is not installed" in lines[0]
    assert "pip install -e '.[mlflow]'" in lines[0]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_run_without_mlflow_never_imports_it(tmp_path: Path) -> None:
    cfg = ts.write_config(
        tmp_path / "c.yaml", data=ts.real_shards(), run=tmp_path / "run", np=1, max_steps=2
    )
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"rc = main(['train', {str(cfg)!r}, '--launcher', 'local'])\n"
        "assert rc == 0, rc\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "run" / "mlflow.db").exists()
