"""``pipeline report RUN_DIR``: a self-contained ``report.html``, PNG plots and a text summary.

It follows the provenance chain backwards from the run: ``runs/NAME/config.yaml`` names
the shards, whose ``manifest.json`` names the pages, whose ``_stats.json`` and
``_fingerprint.json`` name the dump files and their checksums. Stage throughput comes from
``<work_dir>/timings.json`` (written by ``pipeline run``) and the run's ``metrics.jsonl``.
Plots are drawn with matplotlib (Agg) into ``RUN_DIR/report/`` and embedded in the HTML as
base64 PNGs, so the HTML file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import os
import statistics
from pathlib import Path
from typing import Any

from pipeline import config as cfgmod
from pipeline.config import read_yaml
from pipeline.contracts.pages import FINGERPRINT_FILE, STATS_FILE
from pipeline.fs import file_digest, read_json_or_none
from pipeline.stage_config import PipelineConfig
from pipeline.train.metrics import read_metrics


def _manifest(path: Path) -> dict[str, Any] | None:
    """The manifest through its contract (as its JSON object), or None when missing or
    invalid (the report shows what it can)."""
    from pipeline.contracts.manifest import ManifestError, ShardsManifest

    try:
        return ShardsManifest.from_json(path.read_bytes(), str(path)).to_dict()
    except (OSError, ManifestError):
        return None


def _stats(path: Path) -> dict[str, Any] | None:
    """The pages stats through their contract (as the JSON object), or None."""
    from pipeline.contracts.pages import PagesError, PagesStats

    try:
        return PagesStats.from_json(path.read_bytes(), str(path)).to_dict()
    except (OSError, PagesError):
        return None


def _curated(path: Path) -> dict[str, Any] | None:
    """A curated folder's stats (:class:`pipeline.contracts.curated.CuratedStats` as its
    JSON object), or None when ``path`` is not one."""
    import dataclasses

    from pipeline.contracts.curated import CuratedStats, is_curated_stats
    from pipeline.contracts.pages import PagesError

    try:
        raw = path.read_bytes()
        if not is_curated_stats(raw):
            return None
        return dataclasses.asdict(CuratedStats.from_json(raw, str(path)))
    except (OSError, PagesError):
        return None


def _sha256(path: Path) -> str | None:
    try:
        return file_digest(path).hexdigest()
    except OSError:
        return None


def gather(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Collect everything the report shows; missing links are None, never an error.

    Raises:
        FileNotFoundError: ``run_dir`` has neither ``config.yaml`` nor ``metrics.jsonl``.
        pipeline.config.ConfigError: ``config.yaml`` is not plain YAML (a ``!!`` tag).
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file() and not (run / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"{run} is not a run folder (no config.yaml, no metrics.jsonl)")
    cfg = read_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else {}
    try:  # the run's own config through the one path resolver
        resolved = cfgmod.from_dict(PipelineConfig, cfg)
        work, shards = Path(resolved.work_dir), Path(resolved.paths.train_data)
    except (cfgmod.ConfigError, ValueError):  # another version's config: show what we can
        work = Path(cfg.get("work_dir") or "work")
        shards = work / "shards"
    manifest = _manifest(shards / "manifest.json")
    pages = Path(manifest["pages"]["path"]) if manifest else work / "pages"
    curated = _curated(pages / STATS_FILE)
    if curated:  # the shards came from a curated table: its pages lie upstream
        pages = Path(curated["pages"]["path"])
    stats = _stats(pages / STATS_FILE)
    fingerprint = read_json_or_none(pages / FINGERPRINT_FILE)
    metrics = read_metrics(run) if (run / "metrics.jsonl").is_file() else []
    ckpts = sorted((run / "checkpoints").glob("step-*/state.json"))
    checkpoint = None
    if ckpts:
        last = ckpts[-1].parent
        checkpoint = {
            "path": str(last),
            "step": int(last.name.split("-")[1]),
            "model_sha256": _sha256(last / "model.safetensors"),
        }
    model = run / "model" / "model.safetensors"
    return {
        "run": str(run),
        "config": cfg,
        "shards": str(shards),
        "manifest": manifest,
        "manifest_sha256": _sha256(shards / "manifest.json"),
        "pages": str(pages),
        "stats": stats,
        "curated": curated,
        "pages_fingerprint": fingerprint,
        "metrics": metrics,
        "timings": read_json_or_none(work / "timings.json") or {},
        "checkpoint": checkpoint,
        "model_sha256": _sha256(model) if model.is_file() else None,
    }


def _plots(data: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    files = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(out / name)

    stats = data["stats"]
    if stats:
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
        status = {k: v for k, v in stats["totals"]["status"].items() if v}
        a.bar(list(status), list(status.values()), color="#4c72b0")
        a.set_title("pages by status")
        a.set_ylabel("pages")
        for i, v in enumerate(status.values()):
            a.annotate(str(v), (i, v), ha="center", va="bottom", fontsize=8)
        ns = sorted(stats["totals"]["namespaces"].items(), key=lambda kv: -kv[1])[:12]
        b.bar([k for k, _ in ns], [v for _, v in ns], color="#55a868")
        for i, (_, v) in enumerate(ns):
            b.annotate(str(v), (i, v), ha="center", va="bottom", fontsize=8)
        b.set_title("pages by namespace")
        b.set_xlabel("namespace")
        save(fig, "pages.png")
    if data.get("curated"):
        _curate_plot(data["curated"], plt, save)
    m = data["manifest"]
    if m:
        fig, ax = plt.subplots(figsize=(6, 3.4))
        splits = list(m["splits"])
        kept = [m["splits"][s]["tokens"] for s in splits]
        dropped = [m["splits"][s]["dropped_tokens"] for s in splits]
        ax.bar(splits, kept, label="in sequences", color="#4c72b0")
        ax.bar(splits, dropped, bottom=kept, label="dropped tails", color="#c44e52")
        for i, s in enumerate(splits):
            ax.annotate(
                f"{kept[i]:,} tokens\n{m['splits'][s]['sequences']:,} seqs",
                (i, kept[i]),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylim(0, max(k + d for k, d in zip(kept, dropped, strict=True)) * 1.3 or 1)
        ax.set_ylabel("tokens")
        ax.set_title(f"tokens per split (block {m['block_size']}, vocab {m['vocab_size']})")
        ax.legend(fontsize=8)
        save(fig, "tokens.png")
    rows = data["metrics"]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 3.8))
        tr = [(r["step"], r["loss"]) for r in rows if r.get("loss") is not None]
        va = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
        if tr:
            ax.plot(*zip(*tr, strict=True), label="training loss", lw=1, color="#4c72b0")
        if va:
            ax.plot(*zip(*va, strict=True), "o-", label="validation loss", color="#c44e52")
        ax.set_xlabel("step")
        ax.set_ylabel("cross-entropy (nats/token)")
        ax.set_title("loss")
        ax.legend()
        ax.grid(alpha=0.3)
        save(fig, "loss.png")
    thr = throughput(data)
    if thr:
        fig, ax = plt.subplots(figsize=(8, 0.9 + 0.7 * len(thr)))
        names = list(thr)[::-1]
        secs = [thr[n][2] or 0.0 for n in names]
        ax.barh(names, secs, color="#8172b2")
        for i, n in enumerate(names):
            value, unit, sec = thr[n]
            label = f" {value:,.0f} {unit}" + (f" ({sec:.1f} s)" if sec else "")
            ax.annotate(label, (secs[i], i), va="center", fontsize=9)
        ax.set_xlim(0, max(secs + [1.0]) * 1.6)
        ax.set_xlabel("wall-clock seconds of the stage (last run)")
        ax.set_title("throughput of each stage")
        save(fig, "throughput.png")
    return files


def _curate_plot(cur: dict[str, Any], plt: Any, save: Any) -> None:
    """``curate.png``: documents per rule (removed, and flags on kept ones) and kept vs
    removed ``ok`` pages per detected language (the 12 largest)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    rules = {k: v for k, v in cur["rules"].items() if k != "skipped"}
    a.barh(list(rules), list(rules.values()), color="#c44e52")
    a.set_title("curate: documents per rule")
    a.set_xlabel("documents")
    langs = sorted(cur["languages"].items(), key=lambda kv: -sum(kv[1].values()))[:12]
    names = [k for k, _ in langs]
    kept = [v.get("kept", 0) for _, v in langs]
    b.bar(names, kept, color="#55a868", label="kept")
    removed = [v.get("removed", 0) for _, v in langs]
    b.bar(names, removed, bottom=kept, color="#c44e52", label="removed")
    b.set_title("curate: ok pages per detected language")
    b.legend()
    save(fig, "curate.png")


def throughput(data: dict[str, Any]) -> dict[str, tuple[float, str, float | None]]:
    """``{stage: (rate, unit, seconds)}``: parse pages/s, featurise tokens/s, train tokens/s.

    Stage rates are wall-clock over the stage's whole run (JVM start included) from
    ``timings.json``; training uses the median of the per-step tokens/s in the metrics.
    """
    t, out = data["timings"], {}
    for stage, key, unit in (
        ("parse", "pages", "pages/s"),
        ("curate", "pages", "pages/s"),
        ("featurise", "tokens", "tokens/s"),
    ):
        s = t.get(stage) or {}
        if s.get("seconds") and s.get(key):
            out[stage] = (s[key] / s["seconds"], unit, s["seconds"])
    rates = [r["tokens_per_s"] for r in data["metrics"] if r.get("tokens_per_s")]
    if rates:
        seconds = (t.get("train") or {}).get("seconds")
        out["train"] = (statistics.median(rates), "tokens/s", seconds)
    return out


def provenance(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The chain dump files → pages → shards → checkpoint → model as ``(link, value)``."""
    chain = []
    fp = data["pages_fingerprint"]
    if fp:
        for f in fp["upstream"]["inputs"]:
            chain.append(
                ("dump file", f"{f['file']} ({f['size']:,} bytes, sha256 {f.get('sha256', 'n/a')})")
            )
    elif data["stats"]:
        for d in data["stats"]["inputs"]:
            chain.append(("dump file", f"{d['file']} ({d['size']:,} bytes, no checksum)"))
    chain.append(("pages", f"{data['pages']} (fingerprint {fp['sha256'] if fp else 'n/a'})"))
    if data.get("curated"):
        chain.append(("curated", f"{data['manifest']['pages']['path']}"))
    chain.append(("shards", f"{data['shards']} (manifest sha256 {data['manifest_sha256']})"))
    c = data["checkpoint"]
    chain.append(("checkpoint", f"{c['path']} (model sha256 {c['model_sha256']})" if c else "none"))
    chain.append(("exported model", f"{data['run']}/model (sha256 {data['model_sha256']})"))
    return chain


def summary_text(data: dict[str, Any]) -> str:
    """The one-screen text summary printed by ``pipeline report``."""
    lines = [f"run {data['run']}"]
    if data["stats"]:
        st = data["stats"]["totals"]["status"]
        lines.append("pages: " + ", ".join(f"{k} {v}" for k, v in st.items() if v))
        dropped = data["stats"]["totals"].get("templates_dropped") or {}
        if dropped:  # what the text is missing (issue 14)
            top = list(dropped.items())[:8]
            lines.append("  most dropped templates: " + ", ".join(f"{k} {v}" for k, v in top))
    cur = data.get("curated")
    if cur:
        lines.append("curated: " + ", ".join(f"{k} {v}" for k, v in cur["status"].items() if v))
        lines.append("  rules: " + ", ".join(f"{k} {v}" for k, v in cur["rules"].items()))
        for rule, ex in cur["examples"].items():
            lines.append(f"  removed e.g. {rule}: {ex[0]['key']} {ex[0]['title']!r}")
    if data["manifest"]:
        sp = data["manifest"]["splits"]
        lines.append("tokens: " + ", ".join(f"{s} {v['tokens']:,}" for s, v in sp.items()))
    rows = data["metrics"]
    va = [r["val_loss"] for r in rows if r.get("val_loss") is not None]
    tr = [r["loss"] for r in rows if r.get("loss") is not None]
    if tr:
        lines.append(f"steps: {max(r['step'] for r in rows)}, final training loss {tr[-1]:.4f}")
    if va:
        lines.append(f"validation loss: {va[0]:.4f} -> {va[-1]:.4f}")
    for stage, (v, unit, sec) in throughput(data).items():
        lines.append(f"{stage}: {v:,.0f} {unit}" + (f" over {sec:.1f} s" if sec else ""))
    lines.append("provenance:")
    lines += [f"  {k}: {v}" for k, v in provenance(data)]
    return "\n".join(lines)


def write_report(run_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``RUN_DIR/report/report.html`` and its PNGs; return the HTML path.

    The folder is written beside its place and renamed into it (with the ownership marker,
    :mod:`pipeline.outputs`), so a failed report leaves the previous one whole.

    Raises:
        FileNotFoundError: ``run_dir`` is not a run folder.
        pipeline.errors.OutputError: ``RUN_DIR/report`` holds anything but a previous
            report, or a previous report and ``overwrite`` is off.
    """
    from pipeline.spark.commit import StagedOutput

    data = gather(run_dir)
    out = Path(run_dir) / "report"
    staged = StagedOutput(str(out), "report", overwrite=overwrite)
    with staged as stage:
        tmp = Path(stage.staging)
        pngs = _plots(data, tmp)
        imgs = "".join(
            f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
            f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}'
            "</figcaption></figure>"
            for p in pngs
        )
        chain = "".join(
            f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
            for k, v in provenance(data)
        )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>pipeline report</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "img{max-width:100%}th{text-align:left;padding-right:1em;vertical-align:top}"
            "pre{background:#f4f4f4;padding:1em}</style></head><body>"
            f"<h1>Run {html.escape(str(run_dir))}</h1><pre>{html.escape(summary_text(data))}"
            f"</pre><h2>Plots</h2>{imgs}<h2>Provenance</h2><table>{chain}</table></body></html>"
        )
        (tmp / "report.html").write_text(page, encoding="utf-8")
    return out / "report.html"
