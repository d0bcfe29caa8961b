"""Checkpoints (atomic write, completeness, rotation, compatibility, safe loading), the
metrics log and the launcher's failure report, without Horovod."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from models.gpt import GPT
from models.gpt_config import GPTConfig
from pipeline.train import checkpoint as ck
from pipeline.train.launch import _scan, _scan_torchrun, describe_failure, describe_torchrun_failure
from pipeline.train.metrics import MetricsLog, read_metrics

CFG = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=8, vocab_size=32)


def trained(seed: int = 0) -> tuple[GPT, torch.optim.AdamW]:
    torch.manual_seed(seed)
    model = GPT(CFG)
    opt = torch.optim.AdamW(model.param_groups(0.1), lr=1e-2)
    x = torch.randint(0, 32, (2, 8))
    _, loss = model(x, x)
    loss.backward()
    opt.step()
    return model, opt


def save(run: Path, step: int, keep: int = 3, **state) -> Path:
    model, opt = trained(step)
    return ck.save_checkpoint(
        run, step, model, opt, {"model": dataclasses.asdict(CFG), **state}, keep
    )


def test_round_trip_restores_weights_optimizer_and_tying(tmp_path: Path) -> None:
    model, opt = trained(1)
    folder = ck.save_checkpoint(tmp_path, 7, model, opt, {"extra": 1}, keep=3)
    assert folder == tmp_path / "checkpoints" / "step-0000007"
    assert sorted(p.name for p in folder.iterdir()) == [
        "model.safetensors",
        "optimizer.pt",
        "state.json",
    ]
    state = ck.read_state(folder)
    assert state["step"] == 7 and state["extra"] == 1
    other, other_opt = trained(2)
    ck.load_checkpoint(folder, other, other_opt, torch.device("cpu"))
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert other.lm_head.weight is other.transformer.wte.weight  # still tied
    sa, sb = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i])


def test_rotation_keeps_the_newest(tmp_path: Path) -> None:
    for step in (1, 2, 3, 4, 5):
        save(tmp_path, step, keep=2)
    assert [s for s, _ in ck.complete_checkpoints(tmp_path)] == [4, 5]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "step-0000004",
        "step-0000005",
    ]


def test_incomplete_and_temporary_folders_are_ignored_then_cleaned(tmp_path: Path) -> None:
    good = save(tmp_path, 3)
    root = tmp_path / "checkpoints"
    (root / ".step-0000009.tmp-123").mkdir()  # a writer killed mid-way
    partial = root / "step-0000008"
    partial.mkdir()  # no state.json: not complete
    (partial / "model.safetensors").write_bytes(b"x")
    lying = root / "step-0000007"
    lying.mkdir()
    for name in ("model.safetensors", "optimizer.pt"):
        (lying / name).write_bytes(b"x")
    (lying / "state.json").write_text(json.dumps({"format": ck.FORMAT, "version": 1, "step": 6}))
    torn = root / "step-0000006"
    torn.mkdir()
    (torn / "state.json").write_text('{"format": "spark-gpu')
    assert ck.latest_checkpoint(tmp_path) == good
    removed = ck.clean_temporary(tmp_path)
    assert {p.name for p in removed} == {
        ".step-0000009.tmp-123",
        "step-0000008",
        "step-0000007",
        "step-0000006",
    }
    assert [p.name for p in root.iterdir()] == ["step-0000003"]
    assert ck.latest_checkpoint(tmp_path / "nowhere") is None


def test_a_failed_write_leaves_older_checkpoints(tmp_path: Path) -> None:
    good = save(tmp_path, 1)
    model, opt = trained(0)
    with pytest.raises(TypeError):
        ck.save_checkpoint(tmp_path, 2, model, opt, {"bad": object()}, keep=1)
    assert ck.complete_checkpoints(tmp_path) == [(1, good)]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step-0000001"]


def test_optimizer_file_is_loaded_weights_only(tmp_path: Path) -> None:
    folder = save(tmp_path, 1)
    torch.save({"state": {}, "param_groups": [], "evil": Path("/")}, folder / "optimizer.pt")
    model, opt = trained(0)
    with pytest.raises(ck.CheckpointError, match="optimizer.pt cannot be loaded"):
        ck.load_checkpoint(folder, model, opt, torch.device("cpu"))


def test_model_of_another_shape_is_refused(tmp_path: Path) -> None:
    folder = save(tmp_path, 1)
    other = GPT(dataclasses.replace(CFG, n_embd=32))
    with pytest.raises(ck.CheckpointError, match="does not fit the model"):
        ck.load_checkpoint(folder, other, None, torch.device("cpu"))


def test_damaged_model_file_says_which_checkpoint_to_delete(tmp_path: Path) -> None:
    folder = save(tmp_path, 1)
    (folder / "model.safetensors").write_bytes(b"other bytes, not safetensors" * 20)
    model, opt = trained(0)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint(folder, model, opt, torch.device("cpu"))
    msg = str(e.value)
    assert msg.startswith(f"{folder}/model.safetensors is damaged: not a readable safetensors")
    assert f"delete {folder} to resume from the previous checkpoint" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("content", "cause"),
    [
        (b"garbage" * 10, "refused by the weights-only loader"),
        (b"", "the file is empty or truncated"),
        (None, "not a complete torch file"),  # the real file, cut short
    ],
)
def test_damaged_optimizer_file_is_named(tmp_path: Path, content: bytes | None, cause: str) -> None:
    folder = save(tmp_path, 1)
    path = folder / "optimizer.pt"
    path.write_bytes(path.read_bytes()[:300] if content is None else content)
    model, opt = trained(0)
    with pytest.raises(ck.CheckpointError) as e:
        ck.load_checkpoint(folder, model, opt, torch.device("cpu"))
    msg = str(e.value)
    assert msg.startswith(f"{path} cannot be loaded ({cause}")
    assert f"delete {folder}" in msg and "weights_only` set to `False" not in msg


def test_state_without_a_cursor_is_damaged(tmp_path: Path) -> None:
    ok = dict(model=dataclasses.asdict(CFG), manifest_sha256="a" * 64, global_batch=8)
    state = {"step": 3, "manifest_sha256": "a" * 64, "model": dataclasses.asdict(CFG)}
    with pytest.raises(ck.CheckpointError, match=r"state\.json is damaged.*delete"):
        ck.check_compatible(state, tmp_path, **ok)


def test_exported_model_replaced_by_other_bytes(tmp_path: Path) -> None:
    from safetensors.torch import save_model

    from pipeline.train.export import FORMAT, ExportError, load_exported

    folder = tmp_path / "model"
    folder.mkdir()
    config = {"format": FORMAT, "model": dataclasses.asdict(CFG), "eot_id": 0}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(ExportError, match=r"model\.safetensors is damaged: .*export it again"):
        load_exported(folder)
    save_model(GPT(dataclasses.replace(CFG, n_embd=32)), str(folder / "model.safetensors"))
    with pytest.raises(ExportError, match=r"does not fit config\.json: .*size mismatch"):
        load_exported(folder)


def test_compatibility_checks_name_the_difference(tmp_path: Path) -> None:
    state = {"manifest_sha256": "a" * 64, "model": dataclasses.asdict(CFG), "global_batch": 8}
    state.update(step=1, data={"epoch": 0})
    ok = dict(model=dataclasses.asdict(CFG), manifest_sha256="a" * 64, global_batch=8)
    ck.check_compatible(state, tmp_path, **ok)
    with pytest.raises(ck.CheckpointError, match="other shards"):
        ck.check_compatible(state, tmp_path, **{**ok, "manifest_sha256": "b" * 64})
    other = dataclasses.asdict(dataclasses.replace(CFG, n_layer=3))
    with pytest.raises(ck.CheckpointError, match="n_layer 1 -> 3"):
        ck.check_compatible(state, tmp_path, **{**ok, "model": other})
    with pytest.raises(ck.CheckpointError, match="train.global_batch=8"):
        ck.check_compatible(state, tmp_path, **{**ok, "global_batch": 16})


def test_rng_state_round_trip() -> None:
    cpu = torch.device("cpu")
    saved = ck.rng_state(cpu)
    json.dumps(saved)  # JSON-serialisable
    a = torch.rand(4)
    ck.set_rng_state(saved, cpu)
    assert torch.equal(torch.rand(4), a)


def test_metrics_log_drops_the_steps_a_resume_redoes(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, -1)
    for step in range(6):
        log.write({"step": step, "loss": float(step)})
    log.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')  # torn by a kill
    log = MetricsLog(tmp_path, 3)  # resumed from step 3
    log.write({"step": 4, "loss": float("nan")})
    log.close()
    assert read_metrics(tmp_path) == [{"step": s, "loss": float(s)} for s in range(4)] + [
        {"step": 4, "loss": None}
    ]


def test_failure_report_names_the_first_failed_rank_and_the_checkpoint(tmp_path: Path) -> None:
    folder = save(tmp_path, 20)
    found: dict = {}
    for line in [
        "[0]<stderr>:pipeline train: error: rank 0 lost the other ranks: one of them died",
        "Process 1 exit with status code 137.",
        "Terminating remaining workers after failure of Process 1.",
        "Process 0 exit with status code 143.",
    ]:
        _scan(line, found)
    text = describe_failure(found, 1, tmp_path, [])
    assert text.startswith("rank 1 died (SIGKILL, exit status 137)")
    assert f"The last complete checkpoint is {folder}" in text

    found = {}
    _scan("[1]<stderr>:pipeline train: error: loss became nan at step 5; ...", found)
    _scan("Terminating remaining workers after failure of Process 1.", found)
    assert describe_failure(found, 1, tmp_path / "none", []).startswith(
        "loss became nan at step 5; ... (rank 1). No checkpoint was written"
    )
    assert "last lines:\n  boom" in describe_failure({}, 2, tmp_path, ["boom"])


def torchrun_report(exits: dict[int, int], root: int) -> list[str]:
    """torchrun's failure report for ranks that ended with ``exits`` (negative: killed by
    that signal), ``root`` first observed, as torch's own ``ChildFailedError`` formats it."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    failures = {}
    for rank, code in exits.items():
        failures[rank] = ProcessFailure(rank, 1000 + rank, code, "<N/A>")
        failures[rank].timestamp = 10 if rank == root else 11
    return ChildFailedError("jobs/train.py", failures).format_msg().splitlines()


def scan_torchrun(lines: list[str]) -> dict:
    found: dict = {}
    for line in lines:
        _scan_torchrun(line, found)
    return found


def test_torchrun_failure_names_the_killed_rank_whichever_torchrun_saw_first(
    tmp_path: Path,
) -> None:
    folder = save(tmp_path, 20)
    lost = (
        "pipeline train: error: rank 0 lost the other ranks: one of them died or failed (gloo: x)"
    )
    for root in (0, 1):  # torchrun's first observed failure is a race between the two
        found = scan_torchrun([lost, *torchrun_report({0: 1, 1: -9}, root)])
        assert found["first"] == root and found["exits"] == {0: 1, 1: -9}
        text = describe_torchrun_failure(found, 1, tmp_path, [])
        assert text.startswith("rank 1 died (SIGKILL, exit status -9); torchrun stopped"), text
        assert f"The last complete checkpoint is {folder}" in text


def test_torchrun_failure_keeps_a_rank_error_and_the_root_cause(tmp_path: Path) -> None:
    nan = "pipeline train: error: loss became nan at step 5; lower train.lr"
    found = scan_torchrun([nan, *torchrun_report({0: -15, 1: 1}, 1)])
    text = describe_torchrun_failure(found, 1, tmp_path / "none", [])
    assert text.startswith("loss became nan at step 5; lower train.lr (rank 1). No checkpoint")
    found = scan_torchrun(torchrun_report({0: -15, 1: -6}, 1))  # no message: the root cause
    assert describe_torchrun_failure(found, 1, tmp_path, []).startswith("rank 1 died (SIGABRT")
    found = scan_torchrun(torchrun_report({0: 1, 1: 2}, 0))  # exits without a message
    assert describe_torchrun_failure(found, 1, tmp_path, []).startswith(
        "rank 0 died (exit status 1)"
    )
