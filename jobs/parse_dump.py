"""spark-submit entry point of the parse stage (MediaWiki XML dumps -> pages/).

Locally: ``pipeline parse [CONFIG.yaml] --input DUMP --out DIR [key=value ...]``.
Cluster runbook (filled in with the cluster issue): ``spark-submit --master URL
jobs/parse_dump.py --input hdfs://... --out hdfs://...``.
"""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main(["parse", *sys.argv[1:]]))
