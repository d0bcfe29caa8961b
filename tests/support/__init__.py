"""Helpers shared by the test tiers (unit, spark, dist, e2e, cluster); no tests here.

- :mod:`tests.support.paths`: the repository root, the shared samples folder, the venv's
  ``pipeline`` console script (beside ``sys.executable``, never a hard-coded ``.venv``).
- :mod:`tests.support.samples`: the page counts of ``SOURCES.md``; reading a sample file.
- :mod:`tests.support.manifests`: shards folders written through the manifest contract.
- :mod:`tests.support.shards`: small numbered shards whose every row is known.
- :mod:`tests.support.mirror`: a Wikimedia-style dump mirror served on 127.0.0.1.
- :mod:`tests.support.spark_errors`: failed Spark jobs' exceptions as PySpark words them.
- :mod:`tests.support.training`: real-text shards, tiny-model configs, ``pipeline train``
  and horovodrun helpers of the train-stage tests (also a horovodrun worker script).
- :mod:`tests.support.cluster`: spark-submit to the loopback standalone cluster, watching
  the sockets it opens.
"""
