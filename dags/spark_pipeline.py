"""Airflow DAG ``spark_pipeline``: download -> parse -> curate -> featurise -> train -> report.

The stages are the project's own jobs, run with the project's ``.venv`` (Airflow lives in
``.venv-airflow`` and never imports the project): parse, curate and featurise are
``SparkSubmitOperator`` tasks submitting ``jobs/parse_dump.py``, ``jobs/curate.py`` and
``jobs/featurise.py`` through the Spark connection (its master: ``local[2]``,
``spark://…``, ``yarn``, ``k8s://…``) with ``.venv/bin/spark-submit``; train runs ``pipeline
train`` (horovodrun, the Spark launcher or in-process, as ``train.launcher`` in the config
says); report runs ``pipeline report``. The project-side steps (fetch the dump and resolve
the config, decide whether a stage is up to date, note what a stage published) are
``dags/pipeline_tasks.py``.

Task by task (README, "Scheduling"):

* ``download``: ``pipeline_tasks.py prepare``: fetches WIKI's dump for the run's logical
  date (``date`` param; ``latest`` allowed) from ``mirror`` into ``WORK/dumps``, re-checking
  files already there against their sha1, or takes ``dump`` as it is; writes the resolved
  config (``config`` + ``overrides`` + paths) to ``WORK/.scheduler/config.yaml``, which every
  later task reads.
* ``STAGE.check`` -> ``STAGE.spark_submit`` (or ``train.run``) -> ``STAGE.record``: the check
  exits 99 when the stage is off (curate with ``curate.enabled=false``) or its output is
  complete and made from the same inputs, config and code (the fingerprint of ``pipeline
  run``); Airflow then marks it and the job *skipped* and the next stage goes on. A
  failed job publishes nothing, so earlier outputs and the previous output of that stage
  stay as they were; the tasks after it do not run.
* ``report``: ``pipeline report RUN --overwrite``.

Parameters come from the trigger's params, else the Airflow Variable
``spark_pipeline_<NAME>``, else the default in :data:`DEFAULTS`. ``max_active_runs=1``:
runs of this DAG never share the work folder at once.
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, TaskGroup, Variable

DAG_ID = "spark_pipeline"
UP_TO_DATE = 99  # dags/pipeline_tasks.py check: the stage's output is up to date
PROJECT = os.environ.get("SPARK_PIPELINE_PROJECT") or str(Path(__file__).resolve().parents[1])
"""The checkout holding jobs/, conf/ and .venv: this file's repository (a symlinked DAG
file resolves to it), or $SPARK_PIPELINE_PROJECT, or the Variable spark_pipeline_project."""

DEFAULTS: dict[str, Any] = {
    "wiki": "enwiki",
    "date": "",  # empty: the run's logical date (YYYYMMDD); or "latest", or YYYYMMDD
    "kind": "pages-articles-multistream",
    "mirror": "https://dumps.wikimedia.org",
    "dump": "",  # a dump file, folder or URI already at hand: no download
    "config": "conf/local.yaml",  # relative to the project
    "work_dir": "work/scheduled",  # relative to the project; dumps/, pages/, shards/, runs/
    "pages_uri": "",  # empty: WORK/pages
    "curated_uri": "",  # empty: WORK/curated
    "shards_uri": "",  # empty: WORK/shards
    "run_dir": "",  # empty: WORK/runs/<train.name>
    "spark_conn_id": "spark_local",
    "env_archive": "",  # env.tar.gz of `make package`, for cluster executors
    "bind_address": "127.0.0.1",  # the Spark driver's address
    "overrides": [],  # key.sub=value config overrides for every stage
    "project": PROJECT,
}

# Per task: (retries, execution timeout). A retry of parse/featurise re-runs the job (a
# failed job published nothing); a retry of train resumes from its last checkpoint.
TASKS: dict[str, tuple[int, timedelta]] = {
    "download": (3, timedelta(hours=6)),
    "check": (1, timedelta(minutes=30)),
    "record": (1, timedelta(minutes=10)),
    "parse": (1, timedelta(hours=12)),
    "curate": (1, timedelta(hours=12)),
    "featurise": (1, timedelta(hours=12)),
    "train": (2, timedelta(hours=72)),
    "report": (1, timedelta(minutes=30)),
}
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SPARK_PIPELINE_RETRY_DELAY_S", "300")))


def setting(params: dict[str, Any], name: str) -> Any:
    """A parameter's value: the run's param when set, else the Airflow Variable
    ``spark_pipeline_<name>`` (JSON for ``overrides``), else ``DEFAULTS[name]``."""
    value = params.get(name)
    if value not in (None, "", []):
        return value
    key = f"spark_pipeline_{name}"
    if isinstance(DEFAULTS[name], list):
        return Variable.get(key, default=DEFAULTS[name], deserialize_json=True)
    return Variable.get(key, default=DEFAULTS[name])


def _project(params: dict[str, Any]) -> str:
    return str(setting(params, "project"))


def under_project(params: dict[str, Any], name: str) -> str:
    """A path setting made absolute against the project folder (URIs as they are)."""
    value = str(setting(params, name))
    if not value or "://" in value or os.path.isabs(value):
        return value
    return os.path.join(_project(params), value)


def venv(params: dict[str, Any], tool: str) -> str:
    """A program of the project's .venv, e.g. ``python``, ``spark-submit``."""
    return os.path.join(_project(params), ".venv", "bin", tool)


def config_file(params: dict[str, Any]) -> str:
    """The resolved config of the run, written by the download task."""
    return os.path.join(under_project(params, "work_dir"), ".scheduler", "config.yaml")


def tasks_cmd(params: dict[str, Any], *args: str) -> str:
    """Shell command running ``dags/pipeline_tasks.py ARGS`` with the project's Python."""
    script = os.path.join(_project(params), "dags", "pipeline_tasks.py")
    return shlex.join([venv(params, "python"), script, *args])


def prepare_cmd(params: dict[str, Any], logical_date: Any) -> str:
    """The download task's command (see dags/pipeline_tasks.py prepare); the dump date is
    the ``date`` setting, else the run's logical date, else (a run without one) ``latest``."""
    args = [under_project(params, "config"), "--work", under_project(params, "work_dir")]
    args += ["--out-config", config_file(params)]
    dump = setting(params, "dump")
    if dump:
        args += ["--dump", under_project(params, "dump")]
    else:
        date = setting(params, "date") or (
            logical_date.strftime("%Y%m%d") if logical_date else "latest"
        )
        args += ["--wiki", setting(params, "wiki"), "--date", date]
        args += ["--kind", setting(params, "kind"), "--mirror", setting(params, "mirror")]
    for flag, name in (
        ("--pages", "pages_uri"),
        ("--curated", "curated_uri"),
        ("--shards", "shards_uri"),
        ("--run", "run_dir"),
    ):
        if setting(params, name):
            args += [flag, under_project(params, name)]
    for override in setting(params, "overrides"):
        args += ["--set", str(override)]
    return tasks_cmd(params, "prepare", *args)


def shell(*args: str) -> str:
    """``args`` as one shell command line, each quoted."""
    return shlex.join(args)


MACROS = {
    "shell": shell,
    "setting": setting,
    "under_project": under_project,
    "venv": venv,
    "config_file": config_file,
    "tasks_cmd": tasks_cmd,
    "prepare_cmd": prepare_cmd,
}
# Every shell task: the project's .venv first on PATH (horovodrun, pipeline), run from the
# project folder, the Spark driver and Horovod on the bind address.
SHELL_PREFIX = (
    'export PATH={{ shell(venv(params, "")) }}:"$PATH" '
    "SPARK_LOCAL_IP={{ shell(setting(params, 'bind_address')) }} "
    "&& cd {{ shell(setting(params, 'project')) }} && "
)


class PipelineSparkSubmitOperator(SparkSubmitOperator):
    """``SparkSubmitOperator`` whose connection id, spark-submit path and archives are
    templated too, so that they come from params/Variables at run time."""

    template_fields = (
        *SparkSubmitOperator.template_fields,
        "_conn_id",
        "_spark_binary",
        "_archives",
    )


def _bash(task_id: str, command: str, kind: str, **kwargs: Any) -> BashOperator:
    retries, timeout = TASKS[kind]
    kwargs.setdefault("skip_on_exit_code", None)  # only check tasks skip (on 99)
    return BashOperator(
        task_id=task_id,
        bash_command=SHELL_PREFIX + command,
        retries=retries,
        execution_timeout=timeout,
        **kwargs,
    )


def _spark_stage(stage: str, job: str) -> TaskGroup:
    """check -> spark_submit of ``jobs/JOB`` -> record, for parse or featurise."""
    with TaskGroup(stage) as group:
        check = _bash(
            "check",
            f"{{{{ tasks_cmd(params, 'check', '{stage}', config_file(params)) }}}}",
            "check",
            skip_on_exit_code=UP_TO_DATE,
            trigger_rule="none_failed",
        )
        retries, timeout = TASKS[stage]
        python = "{{ venv(params, 'python') }}"
        archive = "{{ under_project(params, 'env_archive') }}"
        bind = "{{ setting(params, 'bind_address') }}"
        submit = PipelineSparkSubmitOperator(
            task_id="spark_submit",
            application=f"{{{{ setting(params, 'project') }}}}/jobs/{job}",
            application_args=["{{ config_file(params) }}", "--overwrite"],
            conn_id="{{ setting(params, 'spark_conn_id') }}",
            spark_binary="{{ venv(params, 'spark-submit') }}",
            archives=f"{{% if setting(params, 'env_archive') %}}{archive}#environment{{% endif %}}",
            conf={
                "spark.driver.host": bind,
                "spark.driver.bindAddress": bind,
                "spark.pyspark.driver.python": python,
                # the packed environment on executors when given, else the project's venv
                "spark.pyspark.python": (
                    "{% if setting(params, 'env_archive') %}./environment/bin/python"
                    f"{{% else %}}{python}{{% endif %}}"
                ),
            },
            env_vars={"SPARK_LOCAL_IP": bind, "PYSPARK_DRIVER_PYTHON": python},
            name=f"spark-pipeline-{stage}",
            retries=retries,
            execution_timeout=timeout,
        )
        record = _bash(
            "record",
            f"{{{{ tasks_cmd(params, 'record', '{stage}', config_file(params)) }}}}",
            "record",
        )
        check >> submit >> record
    return group


with DAG(
    dag_id=DAG_ID,
    description="MediaWiki dump -> pages -> token shards -> GPT run -> report (spark-gpu-pipeline)",
    schedule=os.environ.get("SPARK_PIPELINE_SCHEDULE") or None,
    catchup=False,
    max_active_runs=1,
    default_args={"retry_delay": RETRY_DELAY},
    user_defined_macros=MACROS,
    params={
        name: Param(default, type=["array"] if isinstance(default, list) else ["null", "string"])
        for name, default in ((n, [] if isinstance(v, list) else None) for n, v in DEFAULTS.items())
    },
    tags=["spark-gpu-pipeline"],
    doc_md=__doc__,
) as dag:
    download = _bash("download", "{{ prepare_cmd(params, dag_run.logical_date) }}", "download")
    parse = _spark_stage("parse", "parse_dump.py")
    curate = _spark_stage("curate", "curate.py")  # its check skips it with curate.enabled=false
    featurise = _spark_stage("featurise", "featurise.py")
    with TaskGroup("train") as train:
        train_check = _bash(
            "check",
            "{{ tasks_cmd(params, 'check', 'train', config_file(params)) }}",
            "check",
            skip_on_exit_code=UP_TO_DATE,
            trigger_rule="none_failed",
        )
        train_run = _bash(
            "run", "{{ shell(venv(params, 'pipeline'), 'train', config_file(params)) }}", "train"
        )
        train_check >> train_run
    report = _bash(
        "report",
        "run_dir=\"$({{ tasks_cmd(params, 'path', 'train', config_file(params)) }})\" && "
        '{{ shell(venv(params, "pipeline")) }} report "$run_dir" --overwrite',
        "report",
        trigger_rule="none_failed",
    )
    download >> parse >> curate >> featurise >> train >> report
