"""The data contracts between stages (DESIGN.md "Contracts"), as types.

Each contract has one writer and one validating reader, a ``format_version``, and field
docstrings giving units:

- :mod:`pipeline.contracts.manifest`: ``shards/manifest.json`` (featurise → training);
- :mod:`pipeline.contracts.pages_stats`: ``pages/_stats.json`` (parse → featurise, report);
- :mod:`pipeline.outputs`: ``_pipeline_output.json``, the ownership marker of every output.

Nothing here imports Spark, torch or Horovod.
"""
