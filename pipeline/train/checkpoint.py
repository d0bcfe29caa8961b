"""Checkpoints of a run: ``RUN/checkpoints/step-NNNNNNN/`` written atomically, rotated,
found again on resume.

A checkpoint folder holds

* ``model.safetensors``: the model's tensors (the tied embedding / ``lm_head`` once);
* ``optimizer.pt``: ``optimizer.state_dict()``, read back with ``weights_only=True``;
* ``state.json``: step, epoch, data cursor, RNG states of every rank, the resolved config,
  the model config and the manifest's sha256, written *last*.

It is written into ``checkpoints/.step-NNNNNNN.tmp-<pid>/`` and renamed into place, so a
``step-*`` folder with a readable ``state.json`` is complete; anything else (a temporary
folder left by a killed writer) is ignored and cleaned up. Only rank 0 calls these
functions; the loop broadcasts what it read.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import torch

CHECKPOINTS = "checkpoints"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "state.json"
FORMAT = "spark-gpu-pipeline/checkpoint"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{7,})$")


class TrainError(RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""


class CheckpointError(TrainError):
    """A checkpoint is unreadable or does not fit this run (other shards, other model)."""


class WeightsError(ValueError):
    """A safetensors file does not load into a model: ``damaged`` (not a readable
    safetensors file) or not this model's tensors (``damaged`` false)."""

    def __init__(self, message: str, *, damaged: bool) -> None:
        super().__init__(message)
        self.damaged = damaged


def load_weights(model: torch.nn.Module, path: str | os.PathLike[str], device: str) -> None:
    """Load ``path`` (safetensors) into ``model`` strictly: every tensor, same shapes.

    Raises:
        WeightsError: the file is unreadable or not safetensors (``damaged``), or its
            tensors are not the model's (names or shapes; the first difference is named).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        load_model(model, str(path), strict=True, device=device)
    except SafetensorError as e:
        raise WeightsError(f"not a readable safetensors file ({e})", damaged=True) from None
    except OSError as e:
        raise WeightsError(f"cannot be read ({e.strerror or e})", damaged=True) from None
    except (RuntimeError, ValueError) as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = next(
            (ln for ln in lines if ln.startswith(("size mismatch", "Missing", "Unexpected"))),
            lines[0] if lines else type(e).__name__,
        )
        raise WeightsError(
            f"its tensors are not this model's: {detail[:300]}", damaged=False
        ) from None


def step_name(step: int) -> str:
    """Folder name of the checkpoint after ``step`` optimizer steps: ``step-0000100``."""
    return f"step-{step:07d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check ``folder/state.json``.

    Raises:
        CheckpointError: missing or malformed state, or a model/optimizer file missing.
    """
    folder = Path(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
        raise CheckpointError(f"{folder}: no readable {STATE_FILE} ({e})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{folder}/{STATE_FILE}: not a checkpoint state ({FORMAT})")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder}/{STATE_FILE}: checkpoint version {state.get('version')} is not "
            f"supported (this code reads {FORMAT_VERSION})"
        )
    for name in (MODEL_FILE, OPTIMIZER_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: {name} is missing")
    return state


def complete_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint of a run, oldest first.

    A folder counts when its name is ``step-NNNNNNN``, its ``state.json`` reads and names
    the same step, and its model and optimizer files exist.
    """
    root = Path(run_dir) / CHECKPOINTS
    found: list[tuple[int, Path]] = []
    if not root.is_dir():
        return found
    for entry in root.iterdir():
        m = _NAME.match(entry.name)
        if not m or not entry.is_dir():
            continue
        try:
            state = read_state(entry)
        except CheckpointError:
            continue
        if state.get("step") == int(m.group(1)):
            found.append((int(m.group(1)), entry))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    done = complete_checkpoints(run_dir)
    return done[-1][1] if done else None


def clean_temporary(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary and incomplete checkpoint folders (left by a killed writer).

    Returns the folders removed. Call only while no writer runs (at start-up, on rank 0).
    """
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    complete = {p for _, p in complete_checkpoints(run_dir)}
    removed = []
    for entry in root.iterdir():
        if (
            entry.is_dir()
            and entry not in complete
            and (entry.name.startswith(".step-") or _NAME.match(entry.name))
        ):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def save_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` atomically and keep the newest ``keep``.

    Args:
        run_dir: the run folder (``RUN``); checkpoints go to ``RUN/checkpoints/``.
        step: optimizer steps done.
        model: the plain (not compiled) model; saved with ``safetensors.torch.save_model``,
            which stores a tied tensor once.
        optimizer: its ``state_dict()`` goes to ``optimizer.pt``.
        state: JSON-serialisable extras (cursor, RNG states, config, manifest sha256);
            ``format``, ``version`` and ``step`` are added.
        keep: how many complete checkpoints to keep (>= 1), newest first.

    Returns:
        The checkpoint folder.

    Raises:
        ValueError: ``keep`` < 1. OSError: the disk refuses a write (the temporary folder is
        removed and older checkpoints stay).
    """
    from safetensors.torch import save_model

    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".{step_name(step)}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_model(model, str(tmp / MODEL_FILE))
        torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        body = {"format": FORMAT, "version": FORMAT_VERSION, "step": step, **state}
        with open(tmp / STATE_FILE, "w", encoding="utf-8") as f:
            json.dump(body, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        for name in (MODEL_FILE, OPTIMIZER_FILE):
            with open(tmp / name, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():  # a stale folder of the same step (from a run that diverged)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in complete_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    folder: str | os.PathLike[str],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    device: torch.device,
) -> None:
    """Load a checkpoint's model (strictly: every tensor, same shapes) and optimizer state.

    The optimizer file is read with ``torch.load(..., weights_only=True)``: tensors and
    plain containers only, never arbitrary pickled objects.

    Raises:
        CheckpointError: a file is damaged (saying which checkpoint to delete to resume
            from the one before) or does not match the model.
    """
    folder = Path(folder)
    delete = f"delete {folder} to resume from the previous checkpoint (or from the start)"
    try:
        load_weights(model, folder / MODEL_FILE, str(device))
    except WeightsError as e:
        if e.damaged:
            raise CheckpointError(f"{folder}/{MODEL_FILE} is damaged: {e}; {delete}") from None
        raise CheckpointError(
            f"{folder}/{MODEL_FILE} does not fit the model: {e}; restore the model.* settings "
            "it was trained with, or use a new --run folder"
        ) from None
    if optimizer is None:
        return
    try:
        opt_state = torch.load(folder / OPTIMIZER_FILE, map_location=device, weights_only=True)
        optimizer.load_state_dict(opt_state)
    except (
        OSError,
        RuntimeError,
        ValueError,
        KeyError,
        TypeError,
        IndexError,
        EOFError,
        pickle.UnpicklingError,
    ) as e:
        raise CheckpointError(
            f"{folder}/{OPTIMIZER_FILE} cannot be loaded ({_torch_load_problem(e)}); {delete}"
        ) from None


def _torch_load_problem(e: BaseException) -> str:
    """A short cause of a failed ``torch.load(..., weights_only=True)`` (never torch's
    advice to retry with ``weights_only=False``)."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n")[0].strip()
        detail = detail.split(". Please use")[0]
        return f"refused by the weights-only loader: {detail[:200]}"
    if "zip archive" in text or "central directory" in text:
        return "not a complete torch file"
    if isinstance(e, EOFError):
        return "the file is empty or truncated"
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return first[:200]


def check_compatible(
    state: dict[str, Any],
    folder: Path,
    *,
    model: dict[str, Any],
    manifest_sha256: str,
    global_batch: int,
) -> None:
    """Refuse to resume a checkpoint made from other shards or for another model.

    Raises:
        CheckpointError: ``state.json`` lacks the step or data cursor; or the manifest
            sha256, the resolved model config or the global batch differs, naming both
            values and what to do.
    """
    where = f"cannot resume from {folder}"
    step, data = state.get("step"), state.get("data")
    if isinstance(step, bool) or not isinstance(step, int) or not isinstance(data, dict):
        raise CheckpointError(
            f"{folder}/{STATE_FILE} is damaged: no step or data cursor; delete {folder} to "
            "resume from the previous checkpoint (or from the start)"
        )
    if state.get("manifest_sha256") != manifest_sha256:
        raise CheckpointError(
            f"{where}: it was trained on other shards (manifest sha256 "
            f"{str(state.get('manifest_sha256'))[:12]}..., these are {manifest_sha256[:12]}...); "
            "train on the shards it was made from, or use a new --run folder"
        )
    saved = state.get("model") or {}
    if saved != model:
        diff = ", ".join(
            f"{k} {saved.get(k)!r} -> {model.get(k)!r}"
            for k in sorted(set(saved) | set(model))
            if saved.get(k) != model.get(k)
        )
        raise CheckpointError(
            f"{where}: the model config differs from the checkpoint's ({diff}); restore "
            "those model.* settings, or use a new --run folder"
        )
    if state.get("global_batch") != global_batch:
        raise CheckpointError(
            f"{where}: train.global_batch {global_batch} differs from the checkpoint's "
            f"{state.get('global_batch')}; set train.global_batch={state.get('global_batch')}"
            " or use a new --run folder"
        )


def rng_state(device: torch.device) -> dict[str, str]:
    """This process's torch RNG states (CPU, and the current CUDA device's), base64."""
    out = {"cpu": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii")}
    if device.type == "cuda":
        cuda = torch.cuda.get_rng_state(device)
        out["cuda"] = base64.b64encode(cuda.numpy().tobytes()).decode("ascii")
    return out


def set_rng_state(state: dict[str, str], device: torch.device) -> None:
    """Restore RNG states saved by :func:`rng_state` (the CUDA one only on CUDA)."""

    def tensor(text: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)

    torch.set_rng_state(tensor(state["cpu"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(tensor(state["cuda"]), device)
