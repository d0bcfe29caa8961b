"""spark-submit entry point of the featurise stage (pages/ -> token shards + manifest).

Locally: ``pipeline featurise [CONFIG.yaml] --pages DIR --out DIR [key=value ...]``.
Cluster runbook (filled in with the cluster issue): ``spark-submit --master URL
jobs/featurise.py --pages hdfs://... --out hdfs://...``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["featurise", *sys.argv[1:]]))
