"""The MLflow settings of a run (pipeline/train/tracking_mlflow.py) without importing mlflow:
params from the shipped config, the default store in the run folder, the install check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.errors import UsageError
from pipeline.stage_config import load_config
from pipeline.train import tracking_mlflow as tm

ROOT = Path(__file__).resolve().parents[2]


def test_spec_of_the_local_config(tmp_path: Path) -> None:
    cfg = load_config(str(ROOT / "conf" / "local.yaml"), ["train.mlflow=true"])
    spec = tm.spec_for(cfg, tmp_path / "run", None)
    assert spec is not None
    assert spec.uri == f"sqlite:///{tmp_path.resolve()}/run/mlflow.db"
    assert spec.uri.startswith("sqlite:////")  # four slashes: an absolute path
    assert spec.experiment == cfg.train.name
    assert spec.artifact_location == (tmp_path / "run" / "mlflow-artifacts").resolve().as_uri()
    assert spec.params["train.lr"] == str(cfg.train.lr)
    assert spec.params["model.n_layer"] == str(cfg.model.n_layer)
    assert spec.params["train.mlflow"] == "True"
    assert all(isinstance(v, str) for v in spec.params.values())
    assert spec.params["work_dir"] == str(cfg.work_dir)  # top-level keys keep their name
    assert "pipeline.resumed_from_step" not in spec.tags

    resumed = tm.spec_for(cfg, tmp_path / "run", 200)
    assert resumed is not None and resumed.tags["pipeline.resumed_from_step"] == "200"


def test_spec_with_a_tracking_uri_and_when_off(tmp_path: Path) -> None:
    uri = "http://127.0.0.1:5000"
    cfg = load_config(
        str(ROOT / "conf" / "local.yaml"), ["train.mlflow=true", f"train.mlflow_uri={uri}"]
    )
    spec = tm.spec_for(cfg, tmp_path, None)
    assert spec is not None and spec.uri == uri and spec.artifact_location is None
    off = load_config(str(ROOT / "conf" / "local.yaml"))
    assert off.train.mlflow is False
    assert tm.spec_for(off, tmp_path, None) is None


def test_flat_params_cut_long_values() -> None:
    flat = tm.flat_params({"a": {"b": None, "c": "x" * 7000}, "d": [1, 2]})
    assert flat == {"a.b": "null", "a.c": "x" * tm.MAX_PARAM_CHARS, "d": "[1, 2]"}


def test_check_installed_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    tm.check_installed(False, None)  # off: nothing checked
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # find_spec -> None
    with pytest.raises(UsageError, match=r"sqlalchemy is not installed; pip install -e"):
        tm.check_installed(True, None)
    if _has("mlflow"):
        tm.check_installed(True, "http://127.0.0.1:5000")  # a server needs no sqlalchemy
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(UsageError, match=r"mlflow and sqlalchemy are not installed"):
        tm.check_installed(True, "sqlite:///x.db")
    with pytest.raises(UsageError, match=r"but mlflow is not installed.*train\.mlflow=false"):
        tm.check_installed(True, "http://127.0.0.1:5000")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
