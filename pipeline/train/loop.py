"""The training loop of one rank: :func:`train_rank`, the function every launcher runs.

``pipeline train -np 1`` calls it in-process, ``horovodrun`` / ``torchrun`` run it through
``jobs/train.py`` in each rank, ``--launcher spark`` through ``horovod.spark.run`` or
``TorchDistributor``. Every distributed call goes through :mod:`pipeline.train.dist`
(Horovod or torch.distributed, ``train.backend``); the dataset gets rank and world size
as plain arguments, and nothing here names a backend.

One optimizer step: the rank takes its ``global_batch / world_size`` rows of the next
global batch, cuts them into ``accum = global_batch / (micro_batch * world_size)``
micro-batches and back-propagates each loss scaled by ``1 / accum``. Gradients accumulate
locally; they are averaged over ranks once per step (Horovod: ``backward_passes_per_step``
of its optimizer; torch: DDP, under ``no_sync`` for all but the last micro-batch). Then
the global gradient norm is clipped and AdamW steps (fused on CUDA). The gradient is thus
the mean over the global batch whatever the backend and world size, and the sequence of
global batches depends only on the seed, so a run resumes exactly, also on another
backend or number of ranks.

On CUDA the forward runs under bf16 autocast with TF32 matmuls allowed, batches are
copied from pinned memory with ``non_blocking``, and ``train.compile`` wraps the model in
``torch.compile``. Each step logs tokens/s and MFU (:func:`pipeline.train.metrics.mfu`);
each evaluation the validation loss in nats per token and bits per byte.

Rank 0 writes ``RUN/config.yaml``, ``RUN/metrics.jsonl``, ``RUN/tensorboard/``, the
checkpoints and ``RUN/model/``; what it reads or writes alone is broadcast (with any
error) so that every rank fails together, with the same message, instead of waiting
forever.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from models.gpt import GPT
from pipeline import config as cfgmod
from pipeline.errors import PipelineError
from pipeline.fs import atomic_write
from pipeline.outputs import claim_run_folder
from pipeline.shards.format import ShardError
from pipeline.shards.reader import ShardDataset
from pipeline.stage_config import PipelineConfig, load_config
from pipeline.train import dist
from pipeline.train.checkpoint import (
    TrainError,
    check_compatible,
    clean_temporary,
    latest_checkpoint,
    load_checkpoint,
    read_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pipeline.train.export import export_model
from pipeline.train.metrics import (
    MetricsLog,
    log_line,
    mfu,
    peak_flops,
    progress_bar,
    summarise,
    val_fields,
)
from pipeline.train.schedule import (
    autocast,
    configure_runtime,
    lr_at,
    pick_device,
    threads_per_rank,
)
from pipeline.train.tracking_mlflow import spec_for as mlflow_spec

CONFIG_FILE = "config.yaml"


class NonFiniteLoss(TrainError):
    """The loss (or a parameter) became NaN or infinite; training stopped."""


def as_config(config: PipelineConfig | dict[str, Any] | str | os.PathLike[str]) -> PipelineConfig:
    """A :class:`PipelineConfig` from itself, its dict form or a YAML file (``RUN/config.yaml``)."""
    if isinstance(config, PipelineConfig):
        return config
    if isinstance(config, dict):
        return cfgmod.from_dict(PipelineConfig, config)
    return load_config(config)


def data_dir(cfg: PipelineConfig) -> str:
    """The shards folder of the run: ``train.data`` or ``<work_dir>/shards``."""
    return cfg.paths.train_data


def run_dir(cfg: PipelineConfig) -> str:
    """The run folder: ``train.run`` or ``<work_dir>/runs/<train.name>``."""
    return cfg.paths.run


def save_config(cfg: PipelineConfig, folder: str | os.PathLike[str]) -> Path:
    """Write the resolved config to ``folder/config.yaml`` atomically; return its path."""
    path = Path(folder) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, yaml.safe_dump(cfgmod.to_dict(cfg), sort_keys=False))


LOST_PEERS = "lost the other ranks"
"""Words of the error a rank raises when a collective fails because a peer is gone; the
launchers look for them to tell a lost peer from the failure that caused it."""


def train_rank(
    config: PipelineConfig | dict[str, Any] | str | os.PathLike[str],
    *,
    stop_after: int | None = None,
) -> dict[str, Any] | None:
    """Train as one rank of the job (Horovod is initialised and shut down here).

    Args:
        config: the resolved config (object, dict, or YAML path such as ``RUN/config.yaml``).
        stop_after: end cleanly after this step (a checkpoint is written, nothing exported),
            as a preempted job would; the LR schedule still follows ``train.max_steps``.

    Returns:
        On rank 0 the run summary (:func:`pipeline.train.metrics.summarise`); None elsewhere.

    Raises:
        TrainError: a bad setting, an unusable or incompatible checkpoint, a non-finite
            loss (:class:`NonFiniteLoss`), a failed write on rank 0; the same on every rank.
        pipeline.shards.format.ShardError: no manifest, a checksum mismatch, a block size
            above the shards', too few rows; raised before any training step.
    """
    cfg = as_config(config)
    info = dist.init(cfg.train.backend)
    try:
        result = _Trainer(cfg, info).run(stop_after)
        dist.barrier()  # every rank done before any leaves: no collective left in flight
        return result
    except Exception as e:
        if not dist.lost_peer(e):
            raise
        raise TrainError(
            f"rank {info.rank} {LOST_PEERS}: one of them died or failed "
            f"({dist.backend()}: {str(e).split('.')[0][:200]})"
        ) from None
    finally:
        dist.shutdown()


class _Trainer:
    """State of one rank's training: data, model, optimizer, cursor, metrics."""

    def __init__(self, cfg: PipelineConfig, info: dist.DistInfo) -> None:
        tc = self.tc = cfg.train
        self.cfg, self.info = cfg, info
        self.device = pick_device(tc.device, info.local_rank)
        configure_runtime(self.device, threads_per_rank(info.local_size))
        self.run_dir = Path(run_dir(cfg))
        root = data_dir(cfg)
        if tc.global_batch % (tc.micro_batch * info.size):
            raise TrainError(
                f"train.global_batch {tc.global_batch} is not a multiple of micro_batch "
                f"{tc.micro_batch} x world size {info.size}; pick a multiple of "
                f"{tc.micro_batch * info.size}"
            )
        self.accum = tc.global_batch // (tc.micro_batch * info.size)
        ds_args: dict[str, Any] = dict(
            rank=info.rank,
            world_size=info.size,
            seed=tc.seed,
            verify=tc.verify_shards,
            block_size=cfg.model.block_size,
        )
        self.train_ds = ShardDataset(root, "train", global_batch=tc.global_batch, **ds_args)
        self.manifest = self.train_ds.manifest
        self.val_ds = None
        if self.manifest.sequences("val") >= info.size:
            self.val_ds = ShardDataset(root, "val", global_batch=info.size, **ds_args)
        try:
            self.model_cfg = cfg.model.resolved(self.manifest.vocab_size)
        except ValueError as e:
            raise TrainError(f"{e} (the shards in {root})") from None
        if tc.verify_shards:  # check every shard now rather than at some later step
            for ds in filter(None, (self.train_ds, self.val_ds)):
                firsts = np.cumsum([0] + [s.sequences for s in ds.shards])[:-1]
                ds.rows_at(firsts)
        self.block_size = self.model_cfg.block_size
        torch.manual_seed(tc.seed)  # the same initial weights everywhere (broadcast anyway)
        self.model = GPT(self.model_cfg).to(self.device)
        adamw = torch.optim.AdamW(
            self.model.param_groups(tc.weight_decay),
            lr=tc.lr,
            betas=(0.9, 0.95),
            eps=1e-8,
            fused=self.device.type == "cuda",  # one kernel for all parameters on CUDA
        )
        self.opt = dist.distributed_optimizer(adamw, self.model.named_parameters(), self.accum)
        self.ddp = dist.distributed_model(self.model, self.device)
        self.forward: Callable[..., Any] = torch.compile(self.ddp) if tc.compile else self.ddp
        self.flops_per_token = self.model.flops_per_token()
        self.peak_flops = peak_flops(self.device, tc.peak_tflops)
        self.bytes_per_token = self._bytes_per_token()
        self.step = 0
        self.last_checkpoint: str | None = None
        self.metrics: MetricsLog | None = None

    # -- rank-0 work, shared with every rank ----------------------------------------------

    def _on_root(self, fn: Callable[[], Any], name: str) -> Any:
        """Run ``fn`` on rank 0 and return its result on every rank; if it fails, every
        rank raises :class:`TrainError` with rank 0's message."""
        ok, payload = True, None
        if self.info.is_main:
            try:
                payload = fn()
            except (TrainError, ShardError, PipelineError, OSError, ValueError) as e:
                ok, payload = False, str(e)
        ok, payload = dist.broadcast_object((ok, payload), name=f"root.{name}")
        if not ok:
            raise TrainError(payload)
        return payload

    def _resume(self) -> dict[str, Any] | None:
        """Load the newest complete checkpoint (rank 0) and share it with every rank."""

        def find() -> dict[str, Any] | None:
            claim_run_folder(str(self.run_dir), data_dir(self.cfg))  # a rank started alone
            clean_temporary(self.run_dir)
            save_config(self.cfg, self.run_dir)
            folder = latest_checkpoint(self.run_dir)
            if folder is None:
                return None
            state = read_state(folder)
            check_compatible(
                state,
                folder,
                model=dataclasses.asdict(self.model_cfg),
                manifest_sha256=self.manifest.sha256,
                global_batch=self.tc.global_batch,
            )
            load_checkpoint(folder, self.model, self.opt, self.device)
            return {"folder": str(folder), "state": state}

        found = self._on_root(find, "resume")
        if found is not None:
            dist.broadcast_optimizer_state(self.opt, root_rank=0)
        named = [(n, p.detach()) for n, p in self.model.named_parameters()]
        dist.broadcast_parameters(named + list(self.model.named_buffers()), root_rank=0)
        self.opt.zero_grad()
        if found is None:
            torch.manual_seed(self.tc.seed + 1 + self.info.rank)  # dropout, per rank
            return None
        state = found["state"]
        self.step = int(state["step"])
        self.last_checkpoint = found["folder"]
        rngs = state.get("rng") or []
        if len(rngs) == self.info.size:
            set_rng_state(rngs[self.info.rank], self.device)
        else:  # another world size: a fresh, reproducible dropout stream per rank
            torch.manual_seed(self.tc.seed + 1 + self.info.rank + 7919 * self.step)
        self.train_ds.load_state_dict(state["data"])
        return found

    # -- one step, evaluation, checkpoint ---------------------------------------------------

    def _train_step(self) -> dict[str, Any]:
        """One optimizer step (``self.step`` is the step being made); its metrics row.

        Raises:
            NonFiniteLoss: the mean loss over the global batch is NaN or infinite; the
                parameters are left as they were before this step.
        """
        tc, step = self.tc, self.step
        started, waited = time.perf_counter(), self.train_ds.wait_seconds()
        lr = lr_at(
            step, lr=tc.lr, min_lr=tc.min_lr, warmup_steps=tc.warmup_steps, max_steps=tc.max_steps
        )
        for group in self.opt.param_groups:
            group["lr"] = lr
        x, y = self.train_ds.next_batch()  # (local_batch, T) int64 each
        x, y = self._to_device(x), self._to_device(y)
        total = torch.zeros((), device=self.device)
        mb = tc.micro_batch
        for i in range(self.accum):
            with dist.accumulate(self.ddp, last=i == self.accum - 1):
                with autocast(self.device):
                    _, loss = self.forward(x[i * mb : (i + 1) * mb], y[i * mb : (i + 1) * mb])
                (loss / self.accum).backward()  # gradients accumulate over micro-batches
            total += loss.detach()
        dist.synchronize(self.opt)  # gradients now averaged over the global batch
        mean_loss = dist.allreduce((total / self.accum).float().cpu(), name="train.loss").item()
        if not math.isfinite(mean_loss):
            self.opt.zero_grad()
            last = self.last_checkpoint or "none (no checkpoint was written yet)"
            raise NonFiniteLoss(
                f"loss became {mean_loss} at step {step}; training stopped before updating "
                f"the weights. The last good checkpoint is {last}. Lower train.lr (or check "
                "the data), then re-run the same command to resume from it"
            )
        max_norm = tc.grad_clip if tc.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
        with dist.skip_synchronize(self.opt):
            self.opt.step()
        self.opt.zero_grad()
        seconds = time.perf_counter() - started
        cursor = self.train_ds
        tokens_per_s = tc.global_batch * self.block_size / seconds
        return {
            "step": step,
            "epoch": round(cursor.epoch + cursor.batch / cursor.batches_per_epoch, 6),
            "loss": mean_loss,
            "lr": lr,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu(self.flops_per_token, tokens_per_s, self.peak_flops * self.info.size),
            "grad_norm": float(grad_norm),
            "data_wait": (self.train_ds.wait_seconds() - waited) / seconds,
            "step_s": seconds,
        }

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        """Copy a batch to the device: from pinned host memory, asynchronously, on CUDA."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _bytes_per_token(self) -> float | None:
        """UTF-8 bytes per target token of the validation rows :meth:`_evaluate` reads,
        summed over ranks (None without a validation split or a readable tokenizer). Turns
        the validation loss into bits per byte: ``loss / ln 2 * tokens / bytes``."""
        if self.val_ds is None:
            return None
        from tokenizers import Tokenizer

        from pipeline.fs import filesystem

        try:
            fs, path = filesystem(self.manifest.uri(self.manifest.content.tokenizer.path))
            with fs.open_input_stream(path, compression=None) as f:
                tok = Tokenizer.from_str(f.read().decode("utf-8"))
        except (OSError, ValueError) as e:
            self._log(f"no bits per byte: the tokenizer does not load ({e})")
            return None
        counts = torch.zeros(2, dtype=torch.float64)  # (bytes, tokens)
        for _, y in self.val_ds.eval_batches(self.tc.micro_batch, self.tc.eval_batches):
            for row in y.tolist():
                counts[0] += len(tok.decode(row).encode("utf-8"))
                counts[1] += len(row)
        counts = dist.allreduce(counts, average=False, name="val.bytes")
        return float(counts[1] / counts[0]) if counts[0] > 0 else None

    @torch.no_grad()
    def _evaluate(self) -> float | None:
        """Mean validation loss over ``train.eval_batches`` batches, averaged over ranks
        (None without a validation split)."""
        if self.val_ds is None:
            return None
        self.model.eval()
        total, n = torch.zeros((), device=self.device), 0
        for x, y in self.val_ds.eval_batches(self.tc.micro_batch, self.tc.eval_batches):
            with autocast(self.device):
                _, loss = self.model(self._to_device(x), self._to_device(y))
            total += loss.float()
            n += 1
        self.model.train()
        return dist.allreduce((total / max(n, 1)).cpu(), name="val.loss").item()

    def _checkpoint(self, loss: float | None) -> None:
        """Write the checkpoint of ``self.step`` (rank 0) after checking the weights."""
        finite = all(bool(torch.isfinite(p).all()) for p in self.model.parameters())
        if not finite:  # the same verdict on every rank: the weights are identical
            raise NonFiniteLoss(
                f"the weights became non-finite at step {self.step}; not checkpointing them. "
                f"The last good checkpoint is {self.last_checkpoint}. Lower train.lr and re-run"
            )
        rngs = dist.allgather_object(rng_state(self.device), name="checkpoint.rng")
        state = {
            "epoch": self.train_ds.epoch,
            "data": self.train_ds.state_dict(),
            "rng": rngs,
            "world_size": self.info.size,
            "global_batch": self.tc.global_batch,
            "loss": loss,
            "model": dataclasses.asdict(self.model_cfg),
            "manifest_sha256": self.manifest.sha256,
            "config": cfgmod.to_dict(self.cfg),
        }

        def write() -> str:
            return str(
                save_checkpoint(
                    self.run_dir, self.step, self.model, self.opt, state, self.tc.keep_checkpoints
                )
            )

        self.last_checkpoint = self._on_root(write, "checkpoint")

    def _log(self, text: str) -> None:
        if self.info.is_main:
            print(f"pipeline train: {text}", file=sys.stderr, flush=True)

    # -- the run ------------------------------------------------------------------------

    def run(self, stop_after: int | None) -> dict[str, Any] | None:
        tc, main = self.tc, self.info.is_main
        found = self._resume()
        if main:
            self.metrics = MetricsLog(
                self.run_dir,
                self.step if found else -1,
                tensorboard=tc.tensorboard,
                mlflow=mlflow_spec(self.cfg, self.run_dir, self.step if found else None),
            )
        n_params = self.model.num_params()
        if found:
            self._log(f"resumed from {found['folder']} (step {self.step})")
        self._log(
            f"{self.info.size} rank(s) on {self.device}, {torch.get_num_threads()} thread(s) "
            f"each; model {n_params / 1e6:.2f}M parameters; global batch {tc.global_batch} = "
            f"{tc.micro_batch} x {self.info.size} rank(s) x {self.accum} accumulation"
        )
        if not found:
            val = self._evaluate()
            row0 = {"step": 0, "epoch": 0.0, **val_fields(val, self.bytes_per_token)}
            self._write(row0)
            if val is not None:
                self._log(log_line(row0))
        end = tc.max_steps if stop_after is None else min(stop_after, tc.max_steps)
        bar = progress_bar(tc.max_steps, self.step, main)
        try:
            while self.step < end:
                self.step += 1
                row = self._train_step()
                last = self.step == tc.max_steps
                if (tc.eval_every and self.step % tc.eval_every == 0) or last:
                    row.update(val_fields(self._evaluate(), self.bytes_per_token))
                self._write(row)
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.3f}", mfu=f"{row['mfu']:.1%}", refresh=False)
                if row.get("val_loss") is not None:
                    self._log(log_line(row))
                every = tc.checkpoint_every and self.step % tc.checkpoint_every == 0
                if every or last or self.step == end:
                    self._checkpoint(row["loss"])
        finally:
            bar.close()
            if self.metrics:
                self.metrics.close(finished=self.step >= end)
        if self.step >= tc.max_steps:
            extra = {"step": self.step, "run": str(self.run_dir)}
            self._on_root(
                lambda: str(export_model(self.model, self.manifest, self.run_dir / "model", extra)),
                "export",
            )
        return summarise(self.run_dir) if main else None

    def _write(self, row: dict[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.write(row)
