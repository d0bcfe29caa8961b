"""The exported model (``RUN/model/``) and text generation from it.

``RUN/model/`` holds ``model.safetensors`` (the weights, the tied embedding once),
``config.json`` (the resolved :class:`~models.gpt_config.GPTConfig` plus ``eot_id``) and
``tokenizer.json`` (copied from the shards). It is written to a temporary folder beside it
and renamed into place. ``pipeline generate --model RUN/model`` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.gpt import GPT
from models.gpt_config import GPTConfig
from pipeline.fs import filesystem
from pipeline.shards.format import TOKENIZER, Manifest

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "spark-gpu-pipeline/model"
# The sample ``pipeline run`` prints (issue 17, "a demo that speaks";
# :func:`pipeline.train.sample_words.demo_sample`): the model continues the start of a
# held-out validation page (title, empty line, first words; DEMO_PROMPT when there is
# none) instead of a bare end-of-text, at a lower temperature with a small top-k as the
# usual demos do (GPT-2's samples used top-k 40, Radford et al. 2019), with repeated
# trigrams banned (Paulus et al. 2017) against loops and no runs of empty lines (which
# the training text never has). Measured on the `make run` model: see README.
DEMO_PROMPT = "The"
DEMO_DECODING: dict[str, Any] = {
    "temperature": 0.6,
    "top_k": 40,
    "no_repeat_ngram": 3,
    "no_blank_runs": True,
}


class ExportError(ValueError):
    """An exported model folder is missing a file or does not load."""


def export_model(
    model: GPT,
    manifest: Manifest,
    out_dir: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/`` = weights + config + tokenizer, replacing an older export.

    Args:
        model: the trained (plain, not compiled) model.
        manifest: the shards' manifest; its ``tokenizer.json`` is copied and its end-of-text
            id recorded.
        out_dir: the export folder, usually ``RUN/model``.
        extra: more keys for ``config.json`` (e.g. the step trained to).

    Returns:
        ``out_dir`` as a Path.
    """
    from safetensors.torch import save_model

    out = Path(out_dir)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_model(model, str(tmp / MODEL_FILE))
        config = {
            "format": FORMAT,
            "model": dataclasses.asdict(model.config),
            "eot_id": manifest.eot_id,
            "manifest_sha256": manifest.sha256,
            **(extra or {}),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
        fs, src = filesystem(manifest.uri(manifest.content.tokenizer.path))
        with fs.open_input_stream(src, compression=None) as f, open(tmp / TOKENIZER, "wb") as g:
            g.write(f.read())
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_exported(
    model_dir: str | os.PathLike[str], device: torch.device | None = None
) -> tuple[GPT, Any, int]:
    """Load an exported model folder.

    Returns:
        ``(model, tokenizer, eot_id)``: the :class:`GPT` in eval mode on ``device`` (CPU by
        default), a ``tokenizers.Tokenizer`` and the end-of-text id.

    Raises:
        ExportError: the folder or one of its three files is missing, ``config.json`` is
            not a model config, or the weights do not fit it.
    """
    from tokenizers import Tokenizer

    from pipeline.train.checkpoint import WeightsError, load_weights

    folder = Path(model_dir)
    if not folder.is_dir():
        raise ExportError(f"{folder} is not a folder; pass the model/ folder of a training run")
    for name in (CONFIG_FILE, MODEL_FILE, TOKENIZER):
        if not (folder / name).is_file():
            raise ExportError(
                f"{folder} has no {name}; not an exported model (pipeline train writes "
                "RUN/model/ at the end of training)"
            )
    again = (
        "export it again: re-run the `pipeline train` command of that run (it exports "
        "RUN/model from the last checkpoint), or train a new model"
    )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        if not isinstance(config, dict) or config.get("format") != FORMAT:
            raise ExportError(f"{folder}/{CONFIG_FILE}: not a model config ({FORMAT})")
        gpt_config = GPTConfig(**config["model"])
        eot_id = int(config["eot_id"])
    except (KeyError, TypeError, ValueError, OSError) as e:  # ValueError: JSON, UTF-8
        if isinstance(e, ExportError):
            raise
        raise ExportError(
            f"{folder}/{CONFIG_FILE} is not a valid model config ({e}); {again}"
        ) from None
    device = device or torch.device("cpu")
    model = GPT(gpt_config)
    try:
        load_weights(model, folder / MODEL_FILE, str(device))
    except WeightsError as e:
        what = "is damaged" if e.damaged else f"does not fit {CONFIG_FILE}"
        raise ExportError(f"{folder}/{MODEL_FILE} {what}: {e}; {again}") from None
    try:
        tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
    except Exception as e:  # tokenizers raises a bare Exception on a malformed file
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ExportError(f"{folder}/{TOKENIZER} does not load ({first}); {again}") from None
    if tokenizer.get_vocab_size() > gpt_config.vocab_size:
        raise ExportError(
            f"{folder}: the tokenizer has {tokenizer.get_vocab_size()} tokens, more than the "
            f"model's vocab_size {gpt_config.vocab_size}"
        )
    return model.to(device).eval(), tokenizer, eot_id


def no_blank_line_runs(tokenizer: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``logits_processor`` for :meth:`models.gpt.GPT.generate` that never lets the text
    hold two empty lines in a row (three newlines with only spaces or tabs between).

    The training text never does: the parse stage ends a paragraph with one empty line.
    A token is excluded when the newlines it starts with (before its first other
    character) plus the newlines ending the text so far would exceed two.

    Args:
        tokenizer: the model's ``tokenizers.Tokenizer``; each token id is decoded alone.

    Returns:
        ``f(idx, logits) -> logits``: ``idx`` (B, T) int64, ``logits`` (B, V) float32.
    """
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    leading = torch.zeros(vocab, dtype=torch.long)  # (V,) newlines a token starts with
    for i in range(vocab):
        piece = tokenizer.decode([i], skip_special_tokens=False)
        head = piece[: len(piece) - len(piece.lstrip(" \t\n\r"))]
        leading[i] = head.count("\n")
    newline_tokens = leading > 0  # (V,)

    def process(idx: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        out = logits
        for b, row in enumerate(idx[:, -8:].tolist()):
            text = tokenizer.decode(row, skip_special_tokens=False)
            tail = text[len(text.rstrip(" \t\n\r")) :].count("\n")
            if tail:
                ban = newline_tokens & (leading.to(logits.device) + tail > 2)  # (V,)
                out = out.clone() if out is logits else out
                out[b, : len(ban)] = out[b, : len(ban)].masked_fill(ban, float("-inf"))
        return out

    return process


def generate_text(
    model_dir: str | os.PathLike[str],
    prompt: str,
    *,
    max_new_tokens: int = 100,
    temperature: float = 0.8,
    top_k: int | None = 200,
    seed: int | None = None,
    device: torch.device | None = None,
    top_p: float | None = None,
    repetition_penalty: float = 1.0,
    no_repeat_ngram: int = 0,
    no_blank_runs: bool = False,
) -> str:
    """Continue ``prompt`` with an exported model; return prompt + continuation.

    An empty prompt starts from the end-of-text token (a new document). Sampling draws
    from a ``torch.Generator`` seeded with ``seed`` (random when None), so a seed repeats
    its text. Generation stops early at end-of-text, which is not printed. ``top_p``,
    ``repetition_penalty`` and ``no_repeat_ngram`` are those of
    :meth:`models.gpt.GPT.generate`; ``no_blank_runs`` applies
    :func:`no_blank_line_runs`.

    Raises:
        ExportError: see :func:`load_exported`.
        ValueError: ``max_new_tokens`` < 0, ``temperature`` < 0, ``top_k`` < 1, or another
            argument :meth:`models.gpt.GPT.generate` refuses.
    """
    model, tokenizer, eot_id = load_exported(model_dir, device)
    dev = next(model.parameters()).device
    ids = tokenizer.encode(prompt).ids if prompt else []
    start = ids or [eot_id]
    generator = torch.Generator(device=dev)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    idx = torch.tensor([start], dtype=torch.long, device=dev)  # (1, T0)
    out = model.generate(
        idx,
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
        eos_id=eot_id,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        no_repeat_ngram=no_repeat_ngram,
        logits_processor=no_blank_line_runs(tokenizer) if no_blank_runs else None,
    )
    new = [t for t in out[0, len(start) :].tolist() if t != eot_id]
    return prompt + tokenizer.decode(new)
