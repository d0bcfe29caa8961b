"""``pipeline bench`` (``benchmarks/run_all.py``): the bookkeeping around the benchmark
scripts: their ``--json`` results, bench.json and bench.md (the scripts themselves run by
hand: they time things)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run_all
from benchmarks.results import Results, Target, read_results
from pipeline.cli import EXIT_FAILED, EXIT_OK, main

# A stand-in benchmark script: records what a real one records, through the same class.
FAKE = """\
import sys
sys.path.insert(0, {root!r})
from benchmarks.results import Results
args = sys.argv[1:]
r = Results({name!r})
r.table("runs", [{{"config": "ours local[1]", "pages": 412, "pages_per_s": 35.8}}])
print("| config | pages/s |\\n|---|---:|\\n| ours local[1] | 35.8 |")
print(r.target("ours ÷ WikiExtractor pages/s", {value}, 0.5).line())
r.notes.append("a note")
if {fail}:
    sys.exit("it broke: no dump")
r.write(args[args.index("--json") + 1])
"""


def fake_script(tmp_path: Path, name: str, value: float = 0.14, fail: bool = False) -> Path:
    script = tmp_path / f"{name}.py"
    root = str(Path(run_all.ROOT))
    script.write_text(FAKE.format(root=root, name=name, value=value, fail=fail))
    return script


def _result(entries: dict[str, dict]) -> dict:
    machine = {
        "cpu": "AMD EPYC",
        "cores": 2,
        "memory_gib": 23.5,
        "gpu": None,
        "os": "Linux",
        "python": "3.11.7",
        "torch": "2.13.0+cpu",
        "pyspark": "4.0.5",
    }
    result = {"machine": machine, "benchmarks": entries}
    result["targets"] = run_all.targets(result)
    return result


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    r = Results("parse")
    r.table("runs", [{"config": "ours local[1]", "seconds": 11.5}])
    assert r.target("ratio", 0.97, 1.25, higher=False).passed
    assert not r.target("speed-up", 1.2, 1.6).passed
    r.notes.append("note")
    back = read_results(r.write(tmp_path / "parse.json"))
    assert back == r
    data = json.loads((tmp_path / "parse.json").read_text())
    assert data["format"] == "pipeline-bench-results" and data["version"] == 1
    assert [t["passed"] for t in data["targets"]] == [True, False]
    assert Target("speed-up", 1.2, ">=", 1.6).line() == "speed-up: 1.20 (goal >= 1.6): FAIL"


def test_a_results_file_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    for text in (
        "not json",
        json.dumps({"format": "other"}),
        json.dumps({"format": "pipeline-bench-results", "version": 1}),
    ):
        path.write_text(text)
        with pytest.raises(ValueError, match=r"x\.json: not a benchmark results file"):
            read_results(path)


def test_a_benchmark_run_records_its_json_not_its_printed_text(tmp_path: Path) -> None:
    script = fake_script(tmp_path, "parse")
    entry = run_all.run_benchmark("parse", [sys.executable, str(script)], tmp_path / "p.json")
    assert entry["returncode"] == 0 and entry["error"] is None
    assert entry["command"][-2:] == ["--json", str(tmp_path / "p.json")]
    assert entry["results"]["tables"][0]["rows"][0]["pages_per_s"] == 35.8
    assert "| ours local[1] | 35.8 |" in entry["output"]  # kept for people, not parsed
    result = _result({"parse": entry})
    target = {"target": "ours ÷ WikiExtractor pages/s", "value": 0.14, "op": ">=", "goal": 0.5}
    assert result["targets"] == [{"benchmark": "parse", **target, "passed": False}]
    assert run_all.failed(result) == []


def test_a_failed_benchmark_is_recorded_with_its_reason(tmp_path: Path) -> None:
    script = fake_script(tmp_path, "featurise", fail=True)
    out = tmp_path / "f.json"
    entry = run_all.run_benchmark("featurise", [sys.executable, str(script)], out)
    assert entry["returncode"] == 1 and entry["results"] is None
    assert entry["error"] == "exit status 1: it broke: no dump"
    silent = tmp_path / "silent.py"
    silent.write_text("print('done')\n")
    entry2 = run_all.run_benchmark("train", [sys.executable, str(silent)], out)
    assert entry2["error"] == f"wrote no results to {out}"
    assert run_all.failed(_result({"featurise": entry, "train": entry2})) == ["featurise", "train"]


def test_render_puts_machine_and_targets_first(tmp_path: Path) -> None:
    ok = run_all.run_benchmark(
        "parse", [sys.executable, str(fake_script(tmp_path, "parse"))], tmp_path / "p.json"
    )
    bad = run_all.run_benchmark(
        "featurise",
        [sys.executable, str(fake_script(tmp_path, "featurise", value=0.57, fail=True))],
        tmp_path / "f.json",
    )
    md = run_all.render(_result({"parse": ok, "featurise": bad}))
    head, _, rest = md.partition("## parse")
    assert "- CPU: AMD EPYC, 2 cores, 23.5 GiB" in head and "- GPU: none" in head
    assert "## Targets" in head
    assert "- parse: ours ÷ WikiExtractor pages/s: 0.14 (goal >= 0.5): FAIL" in head
    assert "featurise:" not in head  # it failed before writing results
    assert "— exit 0," in rest and "**failed**: exit status 1: it broke: no dump" in rest
    assert "CPU vs GPU" not in md


def test_pipeline_bench_runs_the_runner_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess:
        calls.append(cmd)
        entry = {"error": "exit status 1: boom" if "parse" in cmd else None}
        (tmp_path / "bench.json").write_text(json.dumps({"benchmarks": {"parse": entry}}))
        return subprocess.CompletedProcess(cmd, 1 if "parse" in cmd else 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert main(["bench", "train", "--quick", "--out", str(tmp_path)]) == EXIT_OK
    assert calls[0] == [
        sys.executable,
        str(Path(run_all.__file__).resolve()),
        "train",
        "--out",
        str(tmp_path),
        "--quick",
    ]
    assert main(["bench", "parse", "--out", str(tmp_path)]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"pipeline bench: error: benchmark(s) failed: parse; see {tmp_path}/bench.md" in err


def test_cpu_gpu_crossover_measures_each_size_on_both_devices(tmp_path: Path) -> None:
    """The CPU/GPU ladder's bookkeeping, run with the CPU standing in for the GPU."""
    from tests.support.shards import make_shards

    shards = make_shards(tmp_path / "shards", train=(40,))
    out = run_all.cpu_gpu_crossover(
        str(shards), steps=2, batch=2, ladder=((1, 1, 8), (1, 2, 16)), device="cpu"
    )
    assert [(r["n_layer"], r["n_head"], r["n_embd"]) for r in out["rows"]] == [
        (1, 1, 8),
        (1, 2, 16),
    ]
    for r in out["rows"]:
        assert r["cpu_tokens_per_s"] > 0 and r["gpu_tokens_per_s"] > 0
        assert 0 <= r["copy_share"] < 1 and r["params"] > 0
    assert out["rows"][1]["params"] > out["rows"][0]["params"]
    wins = [r for r in out["rows"] if r["gpu_tokens_per_s"] > r["cpu_tokens_per_s"]]
    assert out["gpu_wins_from"] == (wins[0] if wins else None)
    md = run_all.render({**_result({}), "cpu_gpu": out})
    assert "## CPU vs GPU" in md and md.count("| 1 | ") == 2 and "GPU faster from:" in md


def test_keep_pages_replaces_only_a_previous_parse_output(tmp_path: Path) -> None:
    """``benchmarks/parse.py --keep-pages DIR`` never deletes what it did not write."""
    from benchmarks import parse as bench_parse
    from pipeline.spark.commit import StagedOutput

    def pages(name: str, data: bytes) -> Path:
        with StagedOutput(str(tmp_path / name), "parse") as stage:
            stage.write_bytes("part-00000.parquet", data)
        return tmp_path / name

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("the user's")
    with pytest.raises(SystemExit, match="holds files this tool did not write"):
        bench_parse.keep_pages(pages("run1", b"one"), mine)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    keep = tmp_path / "keep"
    bench_parse.keep_pages(tmp_path / "run1", keep)
    (keep / "README.md").write_text("kept")
    bench_parse.keep_pages(pages("run2", b"two"), keep)
    assert (keep / "part-00000.parquet").read_bytes() == b"two"
    assert (keep / "README.md").read_text() == "kept"
