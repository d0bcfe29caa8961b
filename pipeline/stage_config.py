"""The pipeline's config: one dataclass per stage plus the top-level :class:`PipelineConfig`.

Every field has a docstring (shown by ``pipeline <stage> --help-config``) and every class
validates itself in ``__post_init__``. Sizes are in bytes, times in seconds. Load with
:func:`load_config`; presets live in ``conf/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from models.gpt_config import GPTConfig
from pipeline import config as _config
from pipeline.curate.config import CurateConfig

MiB = 1 << 20

_MASTER = re.compile(r"^(local(\[(\*|\d+)(,\d+)?\])?|spark://.+|yarn|k8s://.+|mesos://.+)$")


@dataclass
class SparkConfig:
    """How Spark-using stages (parse, featurise, the Spark launcher) get their session."""

    master: str = "local[*]"
    """Spark master: ``local[*]``, ``local[N]``, ``spark://host:port``, ``yarn`` or
    ``k8s://https://host:port``. Ignored under spark-submit, whose ``--master`` wins."""
    app_name: str = "spark-gpu-pipeline"
    """Application name shown in the Spark UI and the cluster manager."""
    bind_address: str = "127.0.0.1"
    """Address the driver binds to and advertises (``spark.driver.host``,
    ``spark.driver.bindAddress``, ``SPARK_LOCAL_IP``). Loopback unless a cluster needs
    executors on other hosts to reach the driver."""
    ui_enabled: bool = True
    """Start the Spark web UI (on ``bind_address``, port 4040 or the next free one)."""
    driver_memory: str = "2g"
    """Driver JVM heap (``spark.driver.memory``); only applies when this process starts
    the JVM, i.e. not under spark-submit."""
    shuffle_partitions: int | None = None
    """``spark.sql.shuffle.partitions``; null keeps Spark's default."""
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    """Log level of the Spark JVM after start-up."""
    class_data_sharing: bool = True
    """Start the local driver JVM with the class-data sharing archive that ``make setup``
    builds (``python -m pipeline.spark.cds``), when it exists: about 4 s off each start on
    2 cores. Never under spark-submit or with an extra driver class path."""
    conf: dict[str, str] = field(default_factory=dict)
    """Extra Spark properties, e.g. ``{spark.executor.memory: 4g}``; they override the
    settings above except the loopback binding, which ``bind_address`` controls."""

    def __post_init__(self) -> None:
        if not _MASTER.match(self.master):
            raise ValueError(
                f"master {self.master!r} is not a Spark master URL; use local[*], local[N], "
                "spark://HOST:PORT, yarn or k8s://https://HOST:PORT"
            )
        if not self.bind_address:
            raise ValueError("bind_address must not be empty; use 127.0.0.1 for local runs")
        if not re.fullmatch(r"\d+[kmgt]?", self.driver_memory.lower()):
            raise ValueError(f"driver_memory {self.driver_memory!r} is not a JVM size like 2g")
        if self.shuffle_partitions is not None and self.shuffle_partitions < 1:
            raise ValueError(f"shuffle_partitions must be >= 1, got {self.shuffle_partitions}")


DumpKind = Literal[
    "pages-articles-multistream", "pages-articles", "pages-meta-current", "pages-meta-history"
]
_WIKI = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class DownloadConfig:
    """Download stage: a dump and its index from a Wikimedia-style mirror, sha1-checked."""

    wiki: str | None = None
    """Wiki database name, e.g. ``enwiki``, ``simplewiki``, ``elwikivoyage`` (the
    positional argument of ``pipeline download``)."""
    date: str = "latest"
    """Dump date ``YYYYMMDD``, or ``latest`` for the newest dump whose files of ``kind`` are
    complete (read from the mirror's ``latest/…-rss.xml`` feed)."""
    kind: DumpKind = "pages-articles-multistream"
    """Which dump: ``pages-articles-multistream`` (with its index; parse splits it by
    streams), ``pages-articles``, ``pages-meta-current`` or ``pages-meta-history`` (bz2)."""
    mirror: str = "https://dumps.wikimedia.org"
    """Base URL of the mirror, laid out as ``<mirror>/<wiki>/<date>/<wiki>-<date>-<file>``
    with ``dumpstatus.json`` and ``<wiki>-<date>-sha1sums.txt`` beside the files."""
    out: str | None = None
    """Folder for the files; null means ``<work_dir>/dumps``. They land in
    ``<out>/<wiki>/<date>/`` under their published names."""
    retries: int = 5
    """Retries of a failed request in a row (a dropped connection resumes from the bytes
    already written; an attempt that made progress resets the count)."""
    backoff_s: float = 2.0
    """Seconds before the first retry; doubled at each further retry, capped at 60."""
    timeout_s: float = 60.0
    """Seconds without any data on a connection before it counts as dropped."""
    overwrite: bool = False
    """Fetch again a file this tool downloaded before that no longer matches its published
    sha1 (a file it did not write is never replaced)."""

    def __post_init__(self) -> None:
        if self.wiki is not None and not _WIKI.match(self.wiki):
            raise ValueError(
                f"wiki {self.wiki!r} is not a wiki database name like enwiki or elwikivoyage; "
                "give the wiki first: pipeline download WIKI [CONFIG.yaml]"
            )
        if self.date != "latest" and not re.fullmatch(r"\d{8}", self.date):
            raise ValueError(f"date {self.date!r} is neither YYYYMMDD nor 'latest'")
        if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?$", self.mirror):
            raise ValueError(
                f"mirror {self.mirror!r} is not an http(s) URL like https://dumps.wikimedia.org"
            )
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {self.backoff_s}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s}")


@dataclass
class ParseConfig:
    """Parse stage: MediaWiki XML dumps to the ``pages/`` Parquet table."""

    input: list[str] = field(default_factory=list)
    """Dump files, folders or globs (``.xml``, ``.xml.bz2``, ``.xml.gz``), or text corpora
    (``.jsonl``, ``.jsonl.gz``, ``.jsonl.zst``, ``.parquet``), local paths or Hadoop URIs
    (``file://``, ``hdfs://``, ``s3a://``)."""
    out: str | None = None
    """Output folder; null means ``<work_dir>/pages``."""
    namespaces: list[int] = field(default_factory=lambda: [0])
    """Namespace numbers whose pages are cleaned; others get status ``namespace``."""
    max_wikitext_bytes: int = 4 * MiB
    """Pages whose raw wikitext is larger (UTF-8 bytes) get status ``too_large``."""
    split_bytes: int = 32 * MiB
    """Target compressed bytes per Spark task when splitting one input file: multistream
    dumps by streams, single-stream bz2 by blocks and ``.xml``/``.jsonl`` by byte ranges
    (at least 64 KiB), Parquet by row groups; ``.gz``/``.zst`` files are one task each."""
    text_field: str = "text"
    """Field (JSON Lines) or column (Parquet) holding a corpus document's text."""
    id_field: str = "id"
    """Field or column of a corpus document's id (``page_id``: the integer, else a stable
    hash of it; a document without one gets the hash of its text)."""
    parse_timeout_s: float = 30.0
    """Time guard per page for pathological markup, in CPU seconds; beyond it the page is
    ``parse_error``. Enforced on the C tokenizer too: pages are cleaned in a child process
    that is killed and replaced past the limit (see ``pipeline.wiki.guard``)."""
    page_memory_bytes: int = 1024 * MiB
    """Memory that cleaning one page may take (address space the cleaning child process
    may add, ``RLIMIT_AS``; Linux). Beyond it the page is ``parse_error``. Each running
    parse task has one such child; a 4 MiB page of dense links needs about 600 MiB."""
    on_damaged: Literal["fail", "keep"] = "fail"
    """A truncated or corrupt input: ``fail`` the job naming the file and position and
    publish nothing, or ``keep`` every complete page before the damage and record the
    damage in ``_stats.json``."""
    overwrite: bool = False
    """Replace an existing output folder, which must be a previous parse output (it holds
    the ``_pipeline_output.json`` marker); only its own files are deleted."""

    def __post_init__(self) -> None:
        if self.max_wikitext_bytes < 1:
            raise ValueError(f"max_wikitext_bytes must be >= 1, got {self.max_wikitext_bytes}")
        if self.split_bytes < 1:
            raise ValueError(f"split_bytes must be >= 1, got {self.split_bytes}")
        if self.parse_timeout_s <= 0:
            raise ValueError(f"parse_timeout_s must be > 0, got {self.parse_timeout_s}")
        if self.page_memory_bytes < 64 * MiB:
            raise ValueError(
                f"page_memory_bytes must be >= 64 MiB ({64 * MiB}), got {self.page_memory_bytes}"
            )


@dataclass
class FeaturiseConfig:
    """Featurise stage: the pages table to packed Arrow token shards and a manifest."""

    pages: str | None = None
    """Input pages folder; null means ``<work_dir>/pages``."""
    out: str | None = None
    """Output folder; null means ``<work_dir>/shards``."""
    val_fraction: float = 0.05
    """Fraction of pages in the validation split, chosen by a stable hash of
    ``(wiki, page_id)``."""
    tokenizer: str | None = None
    """Existing ``tokenizer.json`` to use; null trains a byte-level BPE."""
    vocab_size: int = 8192
    """Vocabulary size of a trained tokenizer."""
    tokenizer_sample_bytes: int = 256 * MiB
    """Cap on the training text used to train the tokenizer (deterministic sample)."""
    block_size: int = 1024
    """Tokens per training sequence; rows hold ``block_size + 1`` tokens."""
    shard_bytes: int = 128 * MiB
    """Most token bytes in one shard file (a shard holds at least one row)."""
    dtype: Literal["auto", "uint16", "uint32"] = "auto"
    """Token dtype of the shards: ``auto`` is uint16 when the vocabulary fits, else uint32."""
    overwrite: bool = False
    """Replace an existing output folder, which must be a previous featurise output (it
    holds the ``_pipeline_output.json`` marker); only its own files are deleted."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.vocab_size < 257:
            raise ValueError(
                f"vocab_size {self.vocab_size} is below 257; a byte-level BPE needs the 256 "
                "byte tokens plus <|endoftext|>"
            )
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.shard_bytes < MiB:
            raise ValueError(f"shard_bytes must be >= 1 MiB ({MiB}), got {self.shard_bytes}")
        if self.tokenizer_sample_bytes < 1:
            raise ValueError(
                f"tokenizer_sample_bytes must be >= 1, got {self.tokenizer_sample_bytes}"
            )


@dataclass
class TrainConfig:
    """Train stage: data-parallel training on the shards (Horovod or torch.distributed)."""

    data: str | None = None
    """Shards folder (holding ``manifest.json``); null means ``<work_dir>/shards``."""
    run: str | None = None
    """Run folder; null means ``<work_dir>/runs/<name>``."""
    name: str = "gpt"
    """Run name, used for the default run folder."""
    backend: Literal["horovod", "torch"] = "horovod"
    """``horovod`` (Horovod, Gloo) or ``torch`` (torch.distributed DDP: Gloo on CPU, NCCL
    on GPU); checkpoints resume across them."""
    launcher: Literal["horovodrun", "spark", "local", "torchrun"] = "horovodrun"
    """``horovodrun`` (the backend's own process launcher: horovodrun, or torchrun with
    ``backend=torch``), ``torchrun``, ``spark`` (``horovod.spark.run`` or, with
    ``backend=torch``, ``TorchDistributor``) or ``local`` (one in-process rank)."""
    np: int = 1
    """Number of ranks (world size); 1 runs in-process."""
    hosts: str | None = None
    """horovodrun host list ``host1:4,host2:4``; null means ``localhost:<np>``."""
    network_interface: str = "lo"
    """Network interface Horovod's Gloo traffic uses."""
    max_steps: int = 1000
    """Optimizer steps to train for."""
    global_batch: int = 64
    """Sequences per optimizer step over all ranks."""
    micro_batch: int = 16
    """Sequences per forward/backward on one rank; ``global_batch`` must be a multiple
    of ``micro_batch * np`` (the quotient is the gradient accumulation)."""
    lr: float = 6e-4
    """Peak learning rate after warm-up."""
    min_lr: float = 6e-5
    """Floor of the cosine decay."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    weight_decay: float = 0.1
    """AdamW weight decay on matrices (not on biases and norms)."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this; 0 disables."""
    eval_every: int = 200
    """Evaluate on the validation split every N steps (and at the end)."""
    eval_batches: int = 20
    """Validation batches per evaluation."""
    checkpoint_every: int = 200
    """Write a checkpoint every N steps (and at the end)."""
    keep_checkpoints: int = 3
    """Keep the newest K checkpoints."""
    seed: int = 1337
    """Seed of the data order, initialisation and dropout."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` uses CUDA when present, else CPU."""
    compile: bool = False
    """Wrap the model in ``torch.compile``."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``RUN/tensorboard/`` (rank 0)."""
    mlflow: bool = False
    """Also log params and metrics to MLflow (rank 0; needs the ``mlflow`` extra)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI (``sqlite:///PATH.db``, ``http://127.0.0.1:5000``…); null
    means ``sqlite:///RUN/mlflow.db``. The experiment is ``train.name``."""
    peak_tflops: float = 0.0
    """Peak TFLOP/s of one device for MFU; 0 looks the GPU up in
    ``pipeline.train.metrics.PEAK_TFLOPS`` (MFU 0 when unknown, e.g. on CPU)."""
    verify_shards: bool = True
    """Check each shard's sha256 against the manifest on first use."""

    def __post_init__(self) -> None:
        for name in ("np", "max_steps", "global_batch", "micro_batch", "eval_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if self.global_batch % (self.micro_batch * self.np):
            raise ValueError(
                f"global_batch {self.global_batch} is not a multiple of micro_batch "
                f"{self.micro_batch} x np {self.np}; pick global_batch = k * "
                f"{self.micro_batch * self.np}"
            )
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr} lr={self.lr}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")
        if self.peak_tflops < 0:
            raise ValueError(f"peak_tflops must be >= 0, got {self.peak_tflops}")
        if self.backend == "horovod" and self.launcher == "torchrun":
            raise ValueError(
                "train.launcher=torchrun starts torch.distributed ranks; set train.backend=torch"
            )


@dataclass
class PipelineConfig:
    """The whole pipeline's config; each stage reads its own section plus ``spark``."""

    work_dir: str = "work"
    """Folder holding ``pages/``, ``shards/`` and ``runs/`` unless a stage names its own."""
    spark: SparkConfig = field(default_factory=SparkConfig)
    """Spark session settings, shared by every Spark-using subcommand."""
    parse: ParseConfig = field(default_factory=ParseConfig)
    """Parse stage settings."""
    download: DownloadConfig = field(default_factory=DownloadConfig)
    """Download stage settings (``pipeline download``)."""
    curate: CurateConfig = field(default_factory=CurateConfig)
    """Curate stage settings (dedup, language ID, quality; ``pipeline curate``)."""
    featurise: FeaturiseConfig = field(default_factory=FeaturiseConfig)
    """Featurise stage settings."""
    model: GPTConfig = field(default_factory=GPTConfig)
    """Model shape."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Train stage settings."""

    def __post_init__(self) -> None:
        if not self.work_dir:
            raise ValueError("work_dir must not be empty")
        if self.model.block_size > self.featurise.block_size:
            raise ValueError(
                f"model.block_size {self.model.block_size} exceeds featurise.block_size "
                f"{self.featurise.block_size}; the shards could not feed it"
            )

    def stage_path(self, explicit: str | None, default: str) -> str:
        """Return ``explicit`` if set, else ``<work_dir>/<default>``."""
        return explicit if explicit else os.path.join(self.work_dir, default)

    @property
    def paths(self) -> StagePaths:
        """Every stage's input and output folder under this config (the one resolver)."""
        return StagePaths(
            dumps=self.stage_path(self.download.out, "dumps"),
            pages=self.stage_path(self.parse.out, "pages"),
            curate_pages=self.stage_path(self.curate.pages, "pages"),
            curated=self.stage_path(self.curate.out, "curated"),
            featurise_pages=self.stage_path(self.featurise.pages, "pages"),
            shards=self.stage_path(self.featurise.out, "shards"),
            train_data=self.stage_path(self.train.data, "shards"),
            run=self.stage_path(self.train.run, os.path.join("runs", self.train.name)),
        )


@dataclass(frozen=True)
class StagePaths:
    """Where each stage reads and writes (paths or URIs), from :attr:`PipelineConfig.paths`.

    A field set in its stage's section wins; otherwise it lies under ``work_dir``.
    """

    dumps: str
    """``download.out`` or ``<work_dir>/dumps``: where ``pipeline download`` writes."""
    pages: str
    """``parse.out`` or ``<work_dir>/pages``: the pages table parse writes."""
    curate_pages: str
    """``curate.pages`` or ``<work_dir>/pages``: the pages table curate reads."""
    curated: str
    """``curate.out`` or ``<work_dir>/curated``: the curated table curate writes."""
    featurise_pages: str
    """``featurise.pages`` or ``<work_dir>/pages``: the pages table featurise reads."""
    shards: str
    """``featurise.out`` or ``<work_dir>/shards``: the shards featurise writes."""
    train_data: str
    """``train.data`` or ``<work_dir>/shards``: the shards training reads."""
    run: str
    """``train.run`` or ``<work_dir>/runs/<train.name>``: the run folder."""


def load_config(
    path: str | os.PathLike[str] | None = None, overrides: Sequence[_config.Override] = ()
) -> PipelineConfig:
    """Resolve the pipeline config: defaults < YAML file ``path`` < ``overrides``.

    ``overrides`` are ``"key.sub=value"`` strings (values parsed as YAML scalars) or
    ``(key, value)`` pairs of typed values (the CLI's flags), checked the same way.

    Raises:
        pipeline.config.ConfigError: unknown key, wrong type or invalid value, naming it.
    """
    return _config.load(PipelineConfig, path, overrides)
