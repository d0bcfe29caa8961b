"""``pipeline inspect``: a one-screen summary of a ``pages/`` or ``shards/`` folder."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.fs as pafs

from pipeline.contracts.curated import CuratedStats
from pipeline.contracts.pages import STATS_FILE, read_pages_dir
from pipeline.fs import filesystem
from pipeline.shards import format as fmt


def kind_of(uri: str) -> str:
    """``"shards"`` if ``uri`` holds a ``manifest.json``, ``"pages"`` if a ``_stats.json``
    (or the old layout's ``stats.json``, which :func:`describe_pages` then names).

    Raises:
        ValueError: neither (naming what was looked for).
    """
    fs, path = filesystem(uri)
    if fs.get_file_info(f"{path}/{fmt.MANIFEST}").type == pafs.FileType.File:
        return "shards"
    for name in (STATS_FILE, "stats.json"):
        if fs.get_file_info(f"{path}/{name}").type == pafs.FileType.File:
            return "pages"
    raise ValueError(f"{uri} holds neither manifest.json (shards) nor {STATS_FILE} (pages)")


def describe_shards(uri: str, decode_chars: int = 400) -> str:
    """Summary of a shards folder: per split sequences, tokens and shards; tokenizer,
    vocabulary, dtype; and the first training row decoded back to text.

    Raises:
        pipeline.shards.format.ShardError: incomplete folder or malformed manifest.
    """
    from pipeline.shards.tokenize import load_tokenizer

    m = fmt.load_manifest(uri)
    c = m.content
    tok_info = c.tokenizer
    origin = "trained here" if tok_info.trained else f"given: {tok_info.given}"
    lines = [
        f"shards: {uri}  (format {c.format} v{c.format_version}, code {c.code_version})",
        f"  block_size {m.block_size} (rows of {m.block_size + 1} tokens), dtype {m.dtype}, "
        f"vocab {m.vocab_size}, <|endoftext|> id {m.eot_id}",
        f"  tokenizer {tok_info.path} sha256 {tok_info.sha256[:16]}… ({origin})",
        f"  pages: {c.pages.path} ({c.pages.ok_pages} ok pages)",
        f"  {'split':<6} {'shards':>6} {'sequences':>10} {'tokens':>12} {'documents':>9} "
        f"{'dropped':>8} {'MiB':>8}",
    ]
    for split, info in c.splits.items():
        mib = sum(s.bytes for s in info.shards) / 2**20
        lines.append(
            f"  {split:<6} {len(info.shards):>6} {info.sequences:>10} {info.tokens:>12} "
            f"{info.documents:>9} {info.dropped_tokens:>8} {mib:>8.2f}"
        )
    first = next((s for s in m.shards.get("train", []) if s.sequences), None)
    if first is not None:
        fs, path = filesystem(m.uri(tok_info.path))
        with fs.open_input_stream(path, compression=None) as f:
            tok = load_tokenizer(f.read(), m.uri(tok_info.path))
        table = fmt.open_shard(m, first)
        row = np.asarray(table.column("tokens").chunk(0).flatten()[: m.block_size + 1])
        text = tok.decode(row.tolist(), skip_special_tokens=False)
        lines.append(f"  first row of {first.path}, decoded ({len(row)} tokens):")
        lines.append("    " + json.dumps(text[:decode_chars], ensure_ascii=False))
    return "\n".join(lines)


def describe_pages(uri: str) -> str:
    """Summary of a pages folder from its ``_stats.json``: counts per status, namespace and
    input file, damaged inputs.

    Raises:
        pipeline.contracts.pages.PagesError: incomplete folder, old layout or foreign schema.
    """
    from pipeline.contracts.curated import is_curated_stats

    fs, path = filesystem(uri)
    try:
        with fs.open_input_stream(f"{path}/{STATS_FILE}", compression=None) as f:
            raw = f.read()
    except FileNotFoundError:
        raw = b""
    if is_curated_stats(raw):  # a curated folder: its own summary
        return describe_curated(CuratedStats.from_json(raw, uri), uri)
    table = read_pages_dir(uri)
    stats, t = table.stats, table.stats.totals
    lines = [
        f"pages: {uri}  (code {stats.code_version}; {len(table.files)} Parquet file(s), "
        f"{stats.tasks} task(s))",
        f"  {t.pages} pages, {t.uncompressed_bytes / 2**20:.1f} MiB of XML read",
        "  status:     " + ", ".join(f"{k} {v}" for k, v in t.status.items() if v),
        "  namespaces: " + ", ".join(f"{k}: {v}" for k, v in t.namespaces.items()),
    ]
    for d in stats.inputs:
        lines.append(f"  {d.file}: {d.pages} pages in {d.tasks} task(s)")
    for dmg in stats.damaged:
        lines.append(f"  DAMAGED {dmg.file} at {dmg.position}: {dmg.reason}")
    return "\n".join(lines)


def describe_curated(stats: CuratedStats, uri: str) -> str:
    """Summary of a curated folder's ``_stats.json``
    (:class:`pipeline.contracts.curated.CuratedStats`): documents kept and removed per
    rule and per language, near-duplicate work, and one removed example per rule."""
    nd = stats.near_dup
    lines = [
        f"curated: {uri}  (code {stats.code_version}; {len(stats.files)} Parquet file(s); "
        f"from {stats.pages['path']})",
        f"  {stats.rows} rows; status: "
        + ", ".join(f"{k} {v}" for k, v in stats.status.items() if v),
        "  rules: " + (", ".join(f"{k} {v}" for k, v in stats.rules.items()) or "-"),
        "  languages (kept/removed): "
        + ", ".join(
            f"{k} {v['kept']}/{v['removed']}"
            for k, v in sorted(stats.languages.items(), key=lambda kv: -sum(kv[1].values()))
        ),
        f"  near dedup: {nd['candidate_pairs']} candidate pairs, {nd['verified_pairs']} "
        f"verified, {nd['components']} groups, {nd['rounds']} propagation rounds",
    ]
    for rule, examples in stats.examples.items():
        e = examples[0]
        lines.append(f"  e.g. {rule}: {e['key']} {e['title']!r}: {e['reason']}")
    return "\n".join(lines)
