"""Optional MLflow tracking of training runs (``train.mlflow: true``), rank 0 only.

MLflow is an optional extra (``pip install -e '.[mlflow]'`` with the pins of
``requirements/constraints.txt``): ``mlflow-skinny`` (the client) plus SQLAlchemy and
alembic, which its ``sqlite:`` tracking store needs. The full ``mlflow`` package (its UI
server) cannot be installed beside our pins: mlflow 3.x requires ``pyarrow<26``. Nothing here
imports mlflow until a run is configured to use it, so without it installed nothing changes.

Where runs go: ``train.mlflow_uri``, or by default ``sqlite:///RUN/mlflow.db`` (a database
file inside the run folder; MLflow 3 refuses its old ``file:`` store unless
``MLFLOW_ALLOW_FILE_STORE=true``, and names ``sqlite:`` as the default local backend). The
experiment is ``train.name``. Each launch of the train stage is one MLflow run (a resumed
run starts a new MLflow run tagged ``pipeline.resumed_from_step``, so no step is logged
twice in one MLflow run), with the resolved config as flat params (``train.lr``,
``model.n_layer``…) and the metrics of ``RUN/metrics.jsonl`` under the TensorBoard tags
(:data:`pipeline.train.metrics.TB_TAGS`: ``train/loss``, ``val/bits_per_byte``…) at their
optimizer step. Metrics are buffered and sent every :data:`FLUSH_SECONDS` (one
``log_batch``), and at the end.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import config as cfgmod
from pipeline.errors import UsageError
from pipeline.stage_config import PipelineConfig

MLFLOW_DB = "mlflow.db"
"""The default tracking store's file in the run folder."""

MLFLOW_ARTIFACTS = "mlflow-artifacts"
"""Artifact root of experiments created in the default store (nothing is logged there
today; without it MLflow would point at ``./mlruns`` of the working folder)."""

FLUSH_SECONDS = 10.0
"""Send buffered metrics at most this long after they were written (as TensorBoard's
``flush_secs``)."""

MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS = 100
"""Per-request limits of MLflow's ``log_batch`` (MLflow REST API docs, "Request Limits")."""

MAX_PARAM_CHARS = 6000
"""MLflow's limit on a param value's length (``MAX_PARAM_VAL_LENGTH``)."""

INSTALL_HINT = (
    "pip install -e '.[mlflow]' -c requirements/constraints.txt (installs mlflow-skinny, "
    "SQLAlchemy and alembic)"
)


def default_uri(run_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<absolute RUN>/mlflow.db`` (SQLAlchemy's form: four slashes before an
    absolute path)."""
    return f"sqlite:///{Path(run_dir).resolve() / MLFLOW_DB}"


def check_installed(enabled: bool, uri: str | None) -> None:
    """Refuse, before any rank starts, ``train.mlflow: true`` without mlflow installed.

    Finds the modules without importing them (importing mlflow takes seconds).

    Raises:
        UsageError: mlflow (or, for a ``sqlite:`` store, SQLAlchemy or alembic) is missing;
            the message says how to install it.
    """
    if not enabled:
        return
    needed = ["mlflow"]
    if uri is None or uri.startswith("sqlite:"):
        needed += ["sqlalchemy", "alembic"]
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"train.mlflow is true but {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed; "
            f"{INSTALL_HINT}, or set train.mlflow=false"
        )


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config dict as MLflow params: ``{"train.lr": "0.0006", ...}``; values
    are ``str()`` of the leaves cut to :data:`MAX_PARAM_CHARS`, None becomes ``"null"``."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_params(value, f"{name}."))
        else:
            out[name] = ("null" if value is None else str(value))[:MAX_PARAM_CHARS]
    return out


@dataclass
class MlflowSpec:
    """What to open: store URI, experiment name, params (flat config) and run tags."""

    uri: str
    experiment: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifact_location: str | None = None


def spec_for(
    cfg: PipelineConfig, run_dir: str | os.PathLike[str], resumed_from: int | None
) -> MlflowSpec | None:
    """The :class:`MlflowSpec` of a run (``resumed_from``: the checkpoint's step, None on
    a fresh start), or None when ``train.mlflow`` is off."""
    tc = cfg.train
    if not tc.mlflow:
        return None
    artifacts = None
    if not tc.mlflow_uri:
        artifacts = (Path(run_dir).resolve() / MLFLOW_ARTIFACTS).as_uri()
    tags = {"pipeline.run_folder": str(Path(run_dir).resolve())}
    if resumed_from is not None:
        tags["pipeline.resumed_from_step"] = str(resumed_from)
    return MlflowSpec(
        uri=tc.mlflow_uri or default_uri(run_dir),
        experiment=tc.name,
        params=flat_params(cfgmod.to_dict(cfg)),
        tags=tags,
        artifact_location=artifacts,
    )


class MlflowTracker:
    """One MLflow run: params at open, buffered metrics, status at close.

    Raises (at construction):
        UsageError: mlflow is not installed (:func:`check_installed`).
    """

    def __init__(self, spec: MlflowSpec, tags: Mapping[str, str]) -> None:
        check_installed(True, spec.uri)
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self._tags = dict(tags)
        self._client = MlflowClient(tracking_uri=spec.uri)
        exp = self._client.get_experiment_by_name(spec.experiment)
        if exp is not None:
            experiment_id = exp.experiment_id
        else:
            experiment_id = self._client.create_experiment(
                spec.experiment, artifact_location=spec.artifact_location
            )
        run = self._client.create_run(experiment_id, tags=spec.tags)
        self.run_id: str = run.info.run_id
        params = [Param(k, v) for k, v in spec.params.items()]
        for i in range(0, len(params), MAX_BATCH_PARAMS):
            self._client.log_batch(self.run_id, params=params[i : i + MAX_BATCH_PARAMS])
        self._pending: list[Any] = []
        self._last_flush = time.monotonic()

    def log(self, row: Mapping[str, Any]) -> None:
        """Buffer the tracked keys of one metrics row (``step`` required; None skipped)."""
        from mlflow.entities import Metric

        now_ms = int(time.time() * 1000)
        for key, tag in self._tags.items():
            value = row.get(key)
            if value is not None:
                self._pending.append(Metric(tag, float(value), now_ms, int(row["step"])))
        if (
            len(self._pending) >= MAX_BATCH_METRICS
            or time.monotonic() - self._last_flush >= FLUSH_SECONDS
        ):
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics (``log_batch``, at most 1000 a request)."""
        pending, self._pending = self._pending, []
        for i in range(0, len(pending), MAX_BATCH_METRICS):
            self._client.log_batch(self.run_id, metrics=pending[i : i + MAX_BATCH_METRICS])
        self._last_flush = time.monotonic()

    def close(self, finished: bool) -> None:
        """Flush and mark the run ``FINISHED`` (or ``FAILED`` when training stopped short)."""
        try:
            self.flush()
        finally:
            self._client.set_terminated(self.run_id, "FINISHED" if finished else "FAILED")
