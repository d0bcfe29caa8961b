"""``pipeline bench``: reading the benchmark scripts' printed tables and target verdicts
into bench.json / bench.md (the scripts themselves run by hand: they time things)."""

from __future__ import annotations

from pipeline.bench import markdown_tables, render, target_lines

# Lines as benchmarks/parse.py and benchmarks/featurise.py print them.
PARSE_OUT = """## Parse benchmark: 12 MB of XML (412 pages, 7 bz2 streams, 3.4 MB compressed)

| config | pages | seconds | pages/s |
|---|---:|---:|---:|
| ours local[1] | 412 | 11.5 | 35.8 |
| WikiExtractor 3.1.0 --processes 1 | 412 | 1.6 | 254.9 |

| target | goal | whole process | stage only |
|---|---:|---:|---:|
| ours local[1] pages/s ÷ WikiExtractor pages/s | ≥ 0.50 | 0.14 (FAIL) | 0.24 (FAIL) |
| local[1] peak RSS at 2x input ÷ at 1x | ≤ 1.25 | 0.97 (pass) | - |
"""
FEATURISE_OUT = """featurise benchmark: 212 documents; the stage passes its rows to Arrow
local[1] stage / raw encode_batch (default threads): 0.57x (target >= 0.5x: pass)
local[2] / local[1] stage tokens/s: 1.00x
"""


def _result() -> dict:
    machine = {"cpu": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "gpu": None, "os": "Linux",
               "python": "3.11.7", "torch": "2.13.0+cpu", "pyspark": "4.0.5"}  # fmt: skip
    benches = {
        name: {
            "command": ["python", f"benchmarks/{name}.py"],
            "returncode": 0,
            "seconds": 1.0,
            "output": out,
            "tables": markdown_tables(out),
        }  # fmt: skip
        for name, out in (("parse", PARSE_OUT), ("featurise", FEATURISE_OUT))
    }
    return {"machine": machine, "benchmarks": benches}


def test_markdown_tables_become_rows_keyed_by_header() -> None:
    tables = markdown_tables(PARSE_OUT)
    assert len(tables) == 2
    assert tables[0] == [
        {"config": "ours local[1]", "pages": "412", "seconds": "11.5", "pages/s": "35.8"},
        {"config": "WikiExtractor 3.1.0 --processes 1", "pages": "412", "seconds": "1.6",
         "pages/s": "254.9"},
    ]  # fmt: skip
    assert tables[1][1]["whole process"] == "0.97 (pass)"
    assert markdown_tables(FEATURISE_OUT) == []


def test_target_lines_keep_only_verdicts_in_order() -> None:
    assert target_lines(_result()) == [
        ("parse", "ours local[1] pages/s ÷ WikiExtractor pages/s · ≥ 0.50 · 0.14 (FAIL) · "
                  "0.24 (FAIL)"),
        ("parse", "local[1] peak RSS at 2x input ÷ at 1x · ≤ 1.25 · 0.97 (pass) · -"),
        ("featurise", "local[1] stage / raw encode_batch (default threads): 0.57x "
                      "(target >= 0.5x: pass)"),
    ]  # fmt: skip


def test_render_puts_machine_and_targets_first() -> None:
    md = render(_result())
    head, _, rest = md.partition("## parse")
    assert "- CPU: AMD EPYC, 2 cores, 23.5 GiB" in head and "- GPU: none" in head
    assert "## Targets" in head and "0.14 (FAIL)" in head and "0.57x" in head
    assert "`python benchmarks/parse.py` — exit 0, 1.0 s" in rest
    assert "## featurise" in rest and "CPU vs GPU" not in md


def test_cpu_gpu_crossover_measures_each_size_on_both_devices(tmp_path) -> None:
    """The CPU/GPU ladder's bookkeeping, run with the CPU standing in for the GPU."""
    from pipeline.bench import cpu_gpu_crossover
    from tests.unit.test_reader import make_shards

    shards = make_shards(tmp_path / "shards", train=(40,))
    out = cpu_gpu_crossover(str(shards), steps=2, batch=2, ladder=((1, 1, 8), (1, 2, 16)),
                            device="cpu")  # fmt: skip
    assert [(r["n_layer"], r["n_head"], r["n_embd"]) for r in out["rows"]] == [
        (1, 1, 8), (1, 2, 16)]  # fmt: skip
    for r in out["rows"]:
        assert r["cpu_tokens_per_s"] > 0 and r["gpu_tokens_per_s"] > 0
        assert 0 <= r["copy_share"] < 1 and r["params"] > 0
    assert out["rows"][1]["params"] > out["rows"][0]["params"]
    wins = [r for r in out["rows"] if r["gpu_tokens_per_s"] > r["cpu_tokens_per_s"]]
    assert out["gpu_wins_from"] == (wins[0] if wins else None)
    md = render({**_result(), "cpu_gpu": out})
    assert "## CPU vs GPU" in md and md.count("| 1 | ") == 2 and "GPU faster from:" in md
